"""A SIP caller and clinician phones that react to what they hear (PJSIP's pjsua2).

A script says what a person would do: listen until the service stops talking and waits,
press keys, say something, hang up. Nothing is timed against the service, so a call
goes the same way on a loaded machine as on an idle one. `ivr demo-call`, the end-to-end
tests and the benchmarks all place their calls with it.
"""
