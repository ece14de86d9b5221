-- The rows and features of each dataset version, stored beside its metadata: one uncompressed numpy
-- .npz archive (columns: open_time_ms, open, high, low, close, volume, features) that loads without
-- parsing. Kept in the database rather than in files so that a dataset travels with its metadata, its
-- backups and a remote TIMESCALE_URL, wherever training runs.
CREATE TABLE dataset_payloads (
    dataset_version_id  uuid    PRIMARY KEY REFERENCES dataset_versions (id) ON DELETE CASCADE,
    format              text    NOT NULL CHECK (format = 'npz'),
    byte_count          bigint  NOT NULL CHECK (byte_count >= 0),
    payload             bytea   NOT NULL
);
ALTER TABLE dataset_payloads ALTER COLUMN payload SET STORAGE EXTERNAL;  -- npz of floats barely compresses
COMMENT ON TABLE dataset_payloads IS 'Columnar content of dataset_versions (storage_uri db://dataset_payloads/<id>)';
