"""Where documents and frames live: maggma stores (:mod:`.stores`), the embedded SQLite backend, chunked
trajectory frames (:mod:`.frames`) and the query building shared by the API and the export."""
