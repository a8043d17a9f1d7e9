"""Documents for the practice: per-call notes and the morning report (built pure, I/O at the edges).

note.py and report.py turn call records (the dicts of ivr.records.calls.show_call) and a practice
into Note and Report objects, then JSON; pdf.py renders them; store.py reads the database,
claims a night's report once, writes the files and enqueues the deliveries; scheduler.py
is the controller's task that makes each report at the practice's opening.
"""
