"""Every built-in English text: what callers, clinicians and the fallback say.

One place per language: a text a practice may set in its rules has its default here
(PROMPTS), and so has every sentence of the controller's own (FLOW) and the dialplan's
fallback (FALLBACK). Placeholders in braces are filled when the prompt is prepared.
"""

from __future__ import annotations

#: The prompts a practice may set (`prompts:` in its rules), with their defaults.
PROMPTS = {
    "greeting": "Thank you for calling {practice}. Our office is closed right now.",
    "overflow_greeting": (
        "Thank you for calling {practice}. Our staff are busy helping other callers."
    ),
    "emergency_notice": "If this is a life-threatening emergency, hang up and dial 911.",
    "unknown_caller": "We could not see the number you are calling from.",
    "ask_callback": (
        "Please enter the phone number where we can reach you, then press the pound key."
    ),
    "ask_dob": "Please enter the patient's date of birth as eight digits: month, day, year.",
    "ask_name": "After the tone, please say the patient's first and last name.",
    "ask_reason": "After the tone, please tell us briefly why you are calling.",
    "menu": "",  # built from the triage keys when not set
    "menu_invalid": "Sorry, that is not one of the choices.",
    "menu_no_input": "Sorry, we did not receive a choice.",
    "emergency_advice": (
        "If you believe this is a medical emergency, hang up and dial 911 now. "
        "If you stay on the line, we will connect you with the clinician on call."
    ),
    "connecting": "Please stay on the line while we connect you with the clinician on call.",
    "callback_promise": (
        "Thank you. Your message has been recorded. "
        "The office will call you back after {callback_time}."
    ),
    "same_day_callback": (
        "Thank you. Your message has been recorded. "
        "The office will call you back today, before {closing_time}."
    ),
    "no_answer": (
        "We could not reach the clinician right away. Your message has been recorded, "
        "and the clinician on call will call you back as soon as possible."
    ),
}

#: Words the generated menu prompt uses for each disposition.
DISPOSITION_LABELS = {
    "emergency": "a life-threatening emergency",
    "urgent": "an urgent problem that cannot wait until morning",
    "prescription": "a prescription refill",
    "appointment": "an appointment",
    "routine": "anything else, to leave a message for the office",
}

#: What the flow says to a call no practice claims, before and after the intake it takes
#: for an operator (the service's own wording: there is no practice to take it from).
OPERATOR_GREETING = "Thank you for calling the after hours answering service."
OPERATOR_CLOSING = ("Thank you. Your message has been recorded, and an operator will make "
                    "sure it reaches the right office. Goodbye.")

#: The controller's own wording (steps the rules do not word: read-backs, confirmations,
#: what the caller hears while we search, what a clinician hears).
FLOW = {
    "generic_greeting": OPERATOR_GREETING,
    "offer_caller_id": "To be called back at",
    "offer_caller_id_end": "press 1. To give another number, enter it now, then press the "
                           "pound key.",
    "you_entered": "You entered",
    "confirm": "If this is correct, press 1. To enter it again, press 2.",
    "invalid_number": "Sorry, that is not a valid phone number.",
    "invalid_date": "Sorry, that is not a valid date of birth.",
    "no_input": "Sorry, we did not receive your entry.",
    "no_voice": "Sorry, we did not hear anything. Please try again.",
    "operator_closing": OPERATOR_CLOSING,
    "goodbye": "Goodbye.",
    # {callback_time} when no reopening is known (closed until further notice).
    "reopening_unknown": "the office reopens",
    # Reaching the on-call: what the caller hears while we search.
    "still_searching": "We are still trying to reach the clinician on call. Please stay on "
                       "the line.",
    "callback_eta": "We could not reach the clinician on call right now. They have your "
                    "message and will call you back by",
    "message_taken": "No one could take your call right now. Your message has been recorded "
                     "and the office will call you back. Goodbye.",
    # What a clinician hears when we call them (screening, call-backs, their own line).
    "screen_name": "The patient's name is",
    "screen_reason": "The reason for the call:",
    "screen_number": "The call back number is",
    "screen_accept": "To accept the call, press 1. To pass it to the next clinician on call, "
                     "press 2.",
    "screen_ack": "To acknowledge this message, press 1. To pass it to the next clinician on "
                  "call, press 2.",
    "screen_caller_gone": "The caller has hung up.",
    "offer_dial": "To call the patient now, press 1. Otherwise, hang up.",
    "screen_taken": "Thank you. This message is now yours.",
    "screen_passed": "Thank you. We will try the next clinician on call. Goodbye.",
    "already_taken": "This message has already been taken by another clinician. Goodbye.",
    "not_waiting": "This call is no longer waiting. Goodbye.",
    "taken_elsewhere": "Another clinician has taken this call. Thank you. Goodbye.",
    "cannot_dial": "This number cannot be dialled from the answering service. Goodbye.",
    "ask_pin": "Please enter your PIN, then press the pound key.",
    "no_pending": "There are no messages waiting. Goodbye.",
    "next_message": "Next message.",
    # The clinician line (ivr.flows.clinician_line): a clinician calling from their phone.
    "clinician_offer": "Clinicians, enter your PIN followed by pound. Patients, please stay "
                       "on the line.",
    "pin_wrong": "That PIN is not correct.",
    "you_have": "You have",
    "message_waiting": "message waiting.",
    "messages_waiting": "messages waiting.",
    "message": "Message",
    "received_at": "Received at",
    "line_menu": "Press 1 to acknowledge, 2 to hear it again, 3 for the next message.",
    "line_taken_by_other": "Another clinician has already taken this message.",
    "line_offer_dial": "Press 1 to call the patient now, or 2 for the next message.",
    "line_cannot_dial": "This number cannot be dialled from the answering service.",
    "no_more_messages": "There are no more messages. Goodbye.",
    # A red flag in a routine caller's reason (ivr.flows.redflag): offered the on-call.
    "redflag_offer": "What you told us may be urgent. If this is a medical emergency, hang "
                     "up and dial 911 now. To reach the clinician on call now, press 1. To "
                     "leave your message for the office instead, press 2.",
    # What a clinician hears about the caller during screening.
    "screen_language": "The caller speaks {language}.",
    # The choice at the start when a practice offers several languages: one line per
    # language, each in its own language and voice ({key}: the key that picks it).
    "language_choice": "For English, press {key}.",
}

#: Phrases that may mean an emergency, by topic (ivr.transcribe.redflags). A routine
#: caller whose reason contains one is offered the on-call; a practice adds its own in its
#: rules (red_flags.phrases). Written as callers say them; plurals match too.
RED_FLAGS = {
    "breathing": ("not breathing", "stopped breathing", "cant breathe", "cannot breathe",
                  "can not breathe", "trouble breathing", "difficulty breathing",
                  "hard to breathe", "struggling to breathe", "short of breath",
                  "shortness of breath", "turning blue", "blue lips", "choking"),
    "chest_pain": ("chest pain", "pain in my chest", "pain in his chest",
                   "pain in her chest", "chest pressure", "chest hurts"),
    "unresponsive": ("unresponsive", "wont wake up", "will not wake up", "cant wake",
                     "passed out", "unconscious", "fainted"),
    "seizure": ("seizure", "seizing", "convulsion", "convulsing"),
    "bleeding": ("heavy bleeding", "bleeding heavily", "wont stop bleeding",
                 "will not stop bleeding", "bleeding a lot", "lot of blood"),
    "overdose": ("overdose", "overdosed", "took too many pills", "swallowed pills",
                 "poisoned", "poisoning"),
    "suicidal": ("suicidal", "suicide", "kill myself", "killing myself", "end my life",
                 "want to die", "hurt myself"),
    "stroke": ("stroke", "face drooping", "face is drooping", "slurred speech",
               "slurring", "cant move my arm", "numb on one side", "weak on one side"),
    "infant_fever": ("newborn with a fever", "newborn has a fever", "baby has a fever",
                     "baby with a fever", "infant fever", "newborn fever",
                     "baby has a temperature"),
    "allergy": ("cant swallow", "throat is closing", "throat closing", "tongue is swelling",
                "anaphylaxis", "severe allergic reaction"),
}

#: Red-flag topics as documents name them ("Red flag: breathing trouble").
RED_FLAG_LABELS = {
    "breathing": "breathing trouble", "chest_pain": "chest pain",
    "unresponsive": "unresponsive or fainted", "seizure": "seizure",
    "bleeding": "heavy bleeding", "overdose": "overdose or poisoning",
    "suicidal": "suicidal thoughts", "stroke": "signs of a stroke",
    "infant_fever": "fever in a baby", "allergy": "severe allergic reaction",
    "practice": "a phrase on the practice's own list",
}

#: How documents mark a machine transcript (notes, reports, calls show, the webhook).
TRANSCRIPT_MARK = "automatic transcript, verify against the recording"

#: The language's name as a clinician is told it, and its espeak-ng voice.
LANGUAGE_NAME = "English"
VOICE = "en-us"

#: How Asterisk speaks this language: the language of its core sounds (digits, months,
#: "today") set on the caller's channel, and SayUnixTime formats for a date of birth, a
#: time of day, and a day further ahead than tomorrow.
ASTERISK_LANGUAGE = "en"
SAY_DATE = "BdY"
SAY_CLOCK = "IMp"
SAY_WEEKDAY_DATE = "ABd"

#: Per-practice words a clinician hears first ({practice} filled in when prepared).
SCREEN_INTROS = {
    "live": "This is the after hours answering service for {practice}, with an urgent call.",
    "callback": "This is the after hours answering service for {practice}, with a message "
                "that needs a call back.",
}

#: The fallback dialplan's own prompts: it runs without the controller, so they are fixed.
FALLBACK = {
    "fallback-apology": "We are sorry for the wait. Please stay on the line while we connect "
                        "you to the clinician on call.",
    "fallback-record": "No one could be reached right now. After the tone, please say your "
                       "name, the number where we can call you back, and the reason for your "
                       "call. Press pound when you are done.",
    "fallback-thanks": "Thank you. Your message has been recorded and will be passed to the "
                       "clinician on call. Goodbye.",
    "fallback-screen": "This is the answering service with an urgent patient call. "
                       "Press 1 to accept the call.",
    "moh/hold": "Please stay on the line. We are still trying to reach the clinician on call.",
    # The dialplan's own intake, when the controller is overloaded (shed or too slow).
    "fallback-intake": "Thank you for calling the after hours answering service. If this is "
                       "a life-threatening emergency, hang up and dial 911. If your call is urgent "
                       "and cannot wait until the office opens, press 1 now to reach the "
                       "clinician on call. Otherwise, please stay on the line to leave a "
                       "message.",
    "fallback-message": "After the tone, please say your name, the number where we can call "
                        "you back, and the reason for your call. Press pound when you are "
                        "done.",
}
