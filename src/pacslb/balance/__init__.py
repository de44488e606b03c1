"""Reading-workload balancing (issue 21): an optional service that distributes exams to radiologists.

It sits outside the packet path and drives no engine. `model` names the things (exams, readers, shifts),
`capacity` turns a declared schedule into reading capacity, `scheduler` decides who reads what (pure: no
clock, no I/O), and the service (`service`, `mllp`, `hl7msg`, `store`, `api`) feeds it HL7 and keeps its state
in SQLite. Capacity comes only from the declared schedule; see docs/reading-balance.md for the patent note.
"""
