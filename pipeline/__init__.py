"""The in-process roles of a pair's pipeline, one folder each (`features`, `policy`, `risk`,
`execution`): the pure cores, unit-tested without Ray, and the execution stage that writes the
execution core's steps through the journal and submits them to the venue. The Ray shells in
`actors/` hold them (`actors/<role>/actor.py`); the agreement test runs them in process. Nothing
here imports `ray`."""
