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
RESULT_BRIDGE = "bridge"  # a clinician accepted: bridge the caller to VAR_BRIDGE_TO
#: The controller is at its admission limit (ivr/controller/admission.py): it answers at
#: once, writing nothing, and the dialplan's own intake takes the caller.
RESULT_SHED = "shed"
#: Sentinel values on a clinician's leg (ivr-clinician). Anything else hangs the leg up.
RESULT_ACCEPTED = "accepted"  # the clinician pressed 1: park them until the caller bridges

#: The dialled number as the dialplan saw it, digits and '+' only (FILTERed in dialplan).
VAR_DID = "IVR_DID"
#: The forwarding number (redirecting from) for forwarded calls, FILTERed likewise.
VAR_FORWARDED_FROM = "IVR_FWD"
#: Caller values the dialplan's [ivr-strict] reduced to nothing (or, for the name,
#: shortened): "-"-prefixed tokens from REFUSED_FIELDS, e.g. "-caller-name".
VAR_REFUSED = "IVR_REFUSED"
REFUSED_FIELDS = ("dialled", "caller", "forwarded", "name")
#: The dialplan's bound on the controller taking a call (Settings.controller_answer_seconds):
#: the controller sets it to 0 when it admits the call (ivr/controller/admission.py), and
#: from then on the call is its own.
VAR_ANSWER_TIMEOUT = "TIMEOUT(absolute)"
#: The call's id in the controller's database, set by the controller (for the hangup stamp).
VAR_CALL_ID = "IVR_CALL_ID"
#: Why the controller asked for the fallback (short token, for the timeline).
VAR_FALLBACK_REASON = "IVR_FALLBACK_REASON"
#: The last stage the dialplan reached: see STAGE_* below.
VAR_STAGE = "IVR_STAGE"
#: The accepting clinician's channel name, set by the controller before RESULT_BRIDGE
#: (taken from the screen AGI's agi_channel header, FILTERed again in the dialplan).
VAR_BRIDGE_TO = "IVR_BRIDGE_TO"
#: On a clinician leg: the leg's id (hex), set by the controller's Originate.
VAR_LEG = "IVR_LEG"

# Stages the dialplan writes into VAR_STAGE; the hang-up stamp carries the last one.
STAGE_CONTROLLER = "controller"
STAGE_FALLBACK = "fallback"
#: The dialplan's own intake for an overloaded controller: "urgent? press 1" (ivr-fallback).
STAGE_FALLBACK_INTAKE = "fallback-intake"
STAGE_FALLBACK_DIAL = "fallback-dial"
STAGE_FALLBACK_ANSWERED = "fallback-answered"
STAGE_FALLBACK_RECORD = "fallback-record"
STAGE_FALLBACK_RECORDED = "fallback-recorded"
STAGE_BRIDGED = "bridged"  # the caller was bridged to the clinician who accepted

# --- Files shared with the dialplan (in the PBX instance folder) ----------------------
# Files, not Asterisk's database: writing AstDB over AMI needs the 'system' class, which
# also allows loading modules (and so running commands as the PBX user).

#: <instance>/fallback/<number digits> -> fallback numbers ("-"-joined digit strings)
#: for that DID or forwarding number; `default` is used for numbers no practice claims.
#: Written by the controller on every successful rules load; read by the fallback
#: context with FILE().
DIR_FALLBACK = "fallback"
FALLBACK_DEFAULT_KEY = "default"
#: <instance>/stamps/<UNIQUEID> -> hang-up stamp, "|"-joined fields in STAMP_FIELDS
#: order. Written with FILE() by the hang-up handler on every call; the controller
#: reconciles then deletes it.
DIR_STAMPS = "stamps"
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
    "hangup_cause",
    "hangup_by",
    "fallback_reason",
)
#: Why the call went to the fallback, as the dialplan last had it (VAR_FALLBACK_REASON).
REASON_CONTROLLER_MISSING = "controller-missing"  # no sentinel: unreachable, crashed
REASON_CONTROLLER_TIMEOUT = "controller-timeout"  # it did not take the call in time
REASON_SHED = "shed"  # it said RESULT_SHED
#: hangup_by values: CHANNEL(hangupsource) is the caller's own channel after a BYE, and
#: empty when the PBX ends the channel itself (checked on 22.10.1 with `core restart now`).
HANGUP_BY_CALLER = "caller"
HANGUP_BY_PBX = "pbx"
HANGUP_BY_OTHER = "other"

# --- Dialplan contexts -------------------------------------------------------------

CTX_INBOUND = "ivr-inbound"  # the trunk's context
CTX_FALLBACK = "ivr-fallback"
CTX_HANGUP = "ivr-hangup"
CTX_SCREEN = "ivr-screen"  # fallback screening: "press 1 to accept"
#: A question after a lead-in in one AGI command (GOSUB): ivr.flows.speech.read.
CTX_ASK = "ivr-ask"
#: A question, its beep and the recording after it in one AGI command (GOSUB):
#: ivr.flows.speech.record_after.
CTX_RECORD = "ivr-record"
CTX_GATEWAY_IN = "ivr-gateway-in"  # anything arriving from the clinician gateway: nothing
CTX_CLINICIAN = "ivr-clinician"  # the controller's Originates to clinicians land here
#: How long an accepted clinician waits (music) for the caller's Bridge before hanging up.
PARK_SECONDS = 30
ENDPOINT_TRUNK = "trunk"
ENDPOINT_GATEWAY = "clinician-gateway"

# --- FastAGI routes (agi://host:port/<route>) --------------------------------------

ROUTE_INBOUND = "inbound"
ROUTE_SCREEN = "screen"  # a clinician leg: screening, acknowledgement, dial the patient

# --- UserEvents (AMI) emitted by the dialplan at each decision point -----------------

EV_INBOUND = "IvrInbound"  # call entered the inbound context
EV_CONTROLLER_RETURNED = "IvrControllerReturned"  # AGI returned; Result: sentinel value
EV_FALLBACK = "IvrFallback"  # fallback context entered; Reason: why
EV_FALLBACK_DIAL = "IvrFallbackDial"  # dialling fallback number #Index
EV_FALLBACK_DIAL_RESULT = "IvrFallbackDialResult"  # DialStatus of that attempt
EV_FALLBACK_ACCEPTED = "IvrFallbackAccepted"  # clinician pressed 1 (Linkedid = caller)
EV_FALLBACK_RECORD = "IvrFallbackRecord"  # recording the caller's message
EV_FALLBACK_RECORDED = "IvrFallbackRecorded"  # Record() ended, caller on the line; Status
EV_CONTROLLER_TIMEOUT = "IvrControllerTimeout"  # the controller missed its bound
EV_FALLBACK_INTAKE = "IvrFallbackIntake"  # the dialplan's own intake asks who is urgent
EV_FALLBACK_INTAKE_CHOICE = "IvrFallbackIntakeChoice"  # Urgent: yes/no
EV_ASK = "IvrAsk"  # the dialplan plays a lead-in and a question for the controller (ivr-ask)
EV_RECORD = "IvrRecord"  # the dialplan plays a question and records its answer (ivr-record)
EV_CALL_ENDED = "IvrCallEnded"  # hang-up handler stamped the call
EV_BRIDGE = "IvrBridge"  # the caller is about to Bridge(); Leg: the clinician leg id
EV_BRIDGE_RESULT = "IvrBridgeResult"  # Bridge() returned; Result: BRIDGERESULT
EV_LEG_ANSWERED = "IvrLegAnswered"  # a clinician leg answered; Leg: its id
EV_LEG_SCREENED = "IvrLegScreened"  # the screen AGI returned; Leg, Result: sentinel

# --- Recordings --------------------------------------------------------------------

#: Sub-folder of the instance spool where the fallback Record() writes messages.
SPOOL_FALLBACK_DIR = "ivr-fallback"
