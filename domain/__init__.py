"""Pure domain types shared by every other package. Nothing here does I/O or imports our other packages."""
