"""The dialplan contract: every name shared by the dialplan, the controller and the tests.

The dialplan (dialplans/extensions.conf) and the controller agree on these names and on
nothing else; a test loads the rendered dialplan and checks each name below is used there.
"""

from __future__ import annotations

# --- Channel variables -------------------------------------------------------------

#: Set by the controller as its very last act for a call. The dialplan branches on it and
#: never on AGISTATUS: a controller killed mid-call leaves AGISTATUS=SUCCESS (checked on
#: Asterisk 22.10.1), so only a value the controller chose to write proves it finished.
SENTINEL = "IVR_RESULT"

#: Sentinel values. Anything else (in practice: unset) means the controller failed.
RESULT_DONE = "done"  # the controller handled the call; the dialplan hangs up
RESULT_FALLBACK = "fallback"  # the controller asks the dialplan's fallback to take over

#: The dialled number as the dialplan saw it, digits and '+' only (FILTERed in dialplan).
VAR_DID = "IVR_DID"
#: The forwarding number (redirecting from) for forwarded calls, FILTERed likewise.
VAR_FORWARDED_FROM = "IVR_FWD"
#: The call's id in the controller's database, set by the controller (for the hangup stamp).
VAR_CALL_ID = "IVR_CALL_ID"
#: Why the controller asked for the fallback (short token, for the timeline).
VAR_FALLBACK_REASON = "IVR_FALLBACK_REASON"
#: The last stage the dialplan reached: see STAGE_* below.
VAR_STAGE = "IVR_STAGE"

# Stages the dialplan writes into VAR_STAGE; the hang-up stamp carries the last one.
STAGE_CONTROLLER = "controller"
STAGE_FALLBACK = "fallback"
STAGE_FALLBACK_DIAL = "fallback-dial"
STAGE_FALLBACK_ANSWERED = "fallback-answered"
STAGE_FALLBACK_RECORD = "fallback-record"
STAGE_FALLBACK_RECORDED = "fallback-recorded"

# --- Asterisk database (AstDB) families --------------------------------------------

#: ivrfb/<number digits> -> fallback numbers ("-"-joined digit strings) for that DID or
#: forwarding number; ivrfb/default is used for numbers no practice claims. Written by the
#: controller on every successful rules load; read by the fallback context.
DB_FALLBACK = "ivrfb"
DB_FALLBACK_DEFAULT_KEY = "default"
#: ivrend/<UNIQUEID> -> hang-up stamp, "|"-joined fields in STAMP_FIELDS order. Written by
#: the hang-up handler on every call; the controller reconciles then deletes it.
DB_STAMP = "ivrend"
STAMP_FIELDS = (
    "start_epoch",
    "end_epoch",
    "did",
    "forwarded_from",
    "caller",
    "result",
    "stage",
    "call_id",
    "dialstatus",
)

# --- Dialplan contexts -------------------------------------------------------------

CTX_INBOUND = "ivr-inbound"  # the trunk's context
CTX_FALLBACK = "ivr-fallback"
CTX_HANGUP = "ivr-hangup"
CTX_SCREEN = "ivr-screen"  # fallback screening: "press 1 to accept"
CTX_GATEWAY_IN = "ivr-gateway-in"  # anything arriving from the clinician gateway: nothing
ENDPOINT_TRUNK = "trunk"
ENDPOINT_GATEWAY = "clinician-gateway"

# --- FastAGI routes (agi://host:port/<route>) --------------------------------------

ROUTE_INBOUND = "inbound"
ROUTE_BENCH = "bench"

# --- UserEvents (AMI) emitted by the dialplan at each decision point -----------------

EV_INBOUND = "IvrInbound"  # call entered the inbound context
EV_CONTROLLER_RETURNED = "IvrControllerReturned"  # AGI returned; Result: sentinel value
EV_FALLBACK = "IvrFallback"  # fallback context entered; Reason: why
EV_FALLBACK_DIAL = "IvrFallbackDial"  # dialling fallback number #Index
EV_FALLBACK_DIAL_RESULT = "IvrFallbackDialResult"  # DialStatus of that attempt
EV_FALLBACK_ACCEPTED = "IvrFallbackAccepted"  # clinician pressed 1 (Linkedid = caller)
EV_FALLBACK_RECORD = "IvrFallbackRecord"  # recording the caller's message
EV_CALL_ENDED = "IvrCallEnded"  # hang-up handler stamped the call

# --- Recordings --------------------------------------------------------------------

#: Sub-folder of the instance spool where the fallback Record() writes messages.
SPOOL_FALLBACK_DIR = "ivr-fallback"
