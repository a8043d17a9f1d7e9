"""Every built-in Spanish text: the same keys as ivr.texts.en (a test holds them equal).

Written for callers in the United States (es-US): "usted", 911, the pound key as "la tecla
de numeral". Placeholders in braces are the same as in English.
"""

from __future__ import annotations

#: The prompts a practice may set (`prompts:` in its rules), with their defaults.
PROMPTS = {
    "greeting": "Gracias por llamar a {practice}. Nuestra oficina está cerrada en este "
                "momento.",
    "overflow_greeting": (
        "Gracias por llamar a {practice}. Nuestro personal está atendiendo a otras personas."
    ),
    "emergency_notice": "Si se trata de una emergencia que pone en peligro la vida, cuelgue "
                        "y marque el 911.",
    "unknown_caller": "No pudimos ver el número desde el que llama.",
    "ask_callback": (
        "Por favor, marque el número de teléfono donde podemos llamarle y luego oprima la "
        "tecla de numeral."
    ),
    "ask_dob": "Por favor, marque la fecha de nacimiento del paciente con ocho dígitos: mes, "
               "día y año.",
    "ask_name": "Después del tono, diga el nombre y el apellido del paciente.",
    "ask_reason": "Después del tono, díganos brevemente por qué llama.",
    "menu": "",  # built from the triage keys when not set
    "menu_invalid": "Lo sentimos, esa no es una de las opciones.",
    "menu_no_input": "Lo sentimos, no recibimos ninguna opción.",
    "emergency_advice": (
        "Si cree que se trata de una emergencia médica, cuelgue y marque el 911 ahora. "
        "Si permanece en la línea, le comunicaremos con el médico de guardia."
    ),
    "connecting": "Por favor, no cuelgue mientras le comunicamos con el médico de guardia.",
    "callback_promise": (
        "Gracias. Su mensaje ha sido grabado. "
        "La oficina le devolverá la llamada después de {callback_time}."
    ),
    "same_day_callback": (
        "Gracias. Su mensaje ha sido grabado. "
        "La oficina le devolverá la llamada hoy, antes de {closing_time}."
    ),
    "no_answer": (
        "No pudimos comunicarnos con el médico en este momento. Su mensaje ha sido grabado, "
        "y el médico de guardia le devolverá la llamada lo antes posible."
    ),
}

#: Words the generated menu prompt uses for each disposition.
DISPOSITION_LABELS = {
    "emergency": "una emergencia que pone en peligro la vida",
    "urgent": "un problema urgente que no puede esperar hasta mañana",
    "prescription": "renovar una receta",
    "appointment": "una cita",
    "routine": "cualquier otro asunto, para dejar un mensaje a la oficina",
}

OPERATOR_GREETING = "Gracias por llamar al servicio de contestación fuera de horario."
OPERATOR_CLOSING = ("Gracias. Su mensaje ha sido grabado, y una operadora se asegurará de "
                    "que llegue a la oficina correcta. Adiós.")

#: The controller's own wording.
FLOW = {
    "generic_greeting": OPERATOR_GREETING,
    "offer_caller_id": "Para que le llamemos al",
    "offer_caller_id_end": "oprima 1. Para dar otro número, márquelo ahora y luego oprima la "
                           "tecla de numeral.",
    "you_entered": "Usted marcó",
    "confirm": "Si es correcto, oprima 1. Para marcarlo de nuevo, oprima 2.",
    "invalid_number": "Lo sentimos, ese no es un número de teléfono válido.",
    "invalid_date": "Lo sentimos, esa no es una fecha de nacimiento válida.",
    "no_input": "Lo sentimos, no recibimos lo que marcó.",
    "no_voice": "Lo sentimos, no escuchamos nada. Por favor, inténtelo de nuevo.",
    "operator_closing": OPERATOR_CLOSING,
    "goodbye": "Adiós.",
    # {callback_time} sin fecha de reapertura (cerrado hasta nuevo aviso).
    "reopening_unknown": "que la oficina vuelva a abrir",
    "still_searching": "Seguimos tratando de comunicarnos con el médico de guardia. Por "
                       "favor, no cuelgue.",
    "callback_eta": "No pudimos comunicarnos con el médico de guardia en este momento. Tiene "
                    "su mensaje y le devolverá la llamada antes de",
    "message_taken": "Nadie pudo atender su llamada en este momento. Su mensaje ha sido "
                     "grabado y la oficina le devolverá la llamada. Adiós.",
    "screen_name": "El nombre del paciente es",
    "screen_reason": "El motivo de la llamada:",
    "screen_number": "El número para devolver la llamada es",
    "screen_accept": "Para aceptar la llamada, oprima 1. Para pasarla al siguiente médico de "
                     "guardia, oprima 2.",
    "screen_ack": "Para confirmar este mensaje, oprima 1. Para pasarlo al siguiente médico de "
                  "guardia, oprima 2.",
    "screen_caller_gone": "La persona que llamó ha colgado.",
    "offer_dial": "Para llamar al paciente ahora, oprima 1. Si no, cuelgue.",
    "screen_taken": "Gracias. Este mensaje ahora es suyo.",
    "screen_passed": "Gracias. Intentaremos con el siguiente médico de guardia. Adiós.",
    "already_taken": "Otro médico ya tomó este mensaje. Adiós.",
    "not_waiting": "Esta llamada ya no está en espera. Adiós.",
    "taken_elsewhere": "Otro médico ha tomado esta llamada. Gracias. Adiós.",
    "cannot_dial": "Este número no se puede marcar desde el servicio de contestación. Adiós.",
    "ask_pin": "Por favor, marque su PIN y luego oprima la tecla de numeral.",
    "no_pending": "No hay mensajes en espera. Adiós.",
    "next_message": "Siguiente mensaje.",
    "clinician_offer": "Médicos, marquen su PIN seguido de la tecla de numeral. Pacientes, "
                       "por favor no cuelguen.",
    "pin_wrong": "Ese PIN no es correcto.",
    "you_have": "Tiene",
    "message_waiting": "mensaje en espera.",
    "messages_waiting": "mensajes en espera.",
    "message": "Mensaje",
    "received_at": "Recibido a las",
    "line_menu": "Oprima 1 para confirmar, 2 para escucharlo de nuevo, 3 para el siguiente "
                 "mensaje.",
    "line_taken_by_other": "Otro médico ya tomó este mensaje.",
    "line_offer_dial": "Oprima 1 para llamar al paciente ahora, o 2 para el siguiente mensaje.",
    "line_cannot_dial": "Este número no se puede marcar desde el servicio de contestación.",
    "no_more_messages": "No hay más mensajes. Adiós.",
    "redflag_offer": "Lo que nos dijo puede ser urgente. Si se trata de una emergencia "
                     "médica, cuelgue y marque el 911 ahora. Para hablar ahora con el médico "
                     "de guardia, oprima 1. Para dejar su mensaje a la oficina, oprima 2.",
    "screen_language": "La persona que llama habla {language}.",
    # La elección al principio cuando la consulta ofrece varios idiomas.
    "language_choice": "Para español, oprima {key}.",
}

#: Phrases that may mean an emergency, by topic (the same topics as in English). Written
#: without accents is fine: matching ignores them.
RED_FLAGS = {
    "breathing": ("no puede respirar", "no respira", "dejo de respirar",
                  "dificultad para respirar", "le cuesta respirar", "se esta ahogando",
                  "falta de aire", "labios morados", "se esta poniendo morado"),
    "chest_pain": ("dolor de pecho", "dolor en el pecho", "presion en el pecho"),
    "unresponsive": ("no responde", "no despierta", "no se despierta", "inconsciente",
                     "se desmayo", "perdio el conocimiento"),
    "seizure": ("convulsion", "convulsiones", "convulsionando", "ataque epileptico"),
    "bleeding": ("sangrado abundante", "mucha sangre", "no para de sangrar", "sangra mucho",
                 "hemorragia"),
    "overdose": ("sobredosis", "demasiadas pastillas", "se tomo las pastillas",
                 "envenenamiento", "envenenado"),
    "suicidal": ("suicida", "suicidarme", "quitarme la vida", "matarme", "quiero morir",
                 "hacerme dano"),
    "stroke": ("derrame cerebral", "embolia", "cara caida", "habla arrastrada",
               "no puede mover el brazo", "adormecido de un lado"),
    "infant_fever": ("bebe tiene fiebre", "bebe con fiebre", "recien nacido con fiebre",
                     "recien nacido tiene fiebre"),
    "allergy": ("no puede tragar", "se le cierra la garganta", "reaccion alergica grave",
                "anafilaxia", "lengua hinchada"),
}

RED_FLAG_LABELS = {
    "breathing": "dificultad para respirar", "chest_pain": "dolor de pecho",
    "unresponsive": "no responde o se desmayó", "seizure": "convulsión",
    "bleeding": "sangrado abundante", "overdose": "sobredosis o envenenamiento",
    "suicidal": "pensamientos suicidas", "stroke": "signos de derrame cerebral",
    "infant_fever": "fiebre en un bebé", "allergy": "reacción alérgica grave",
    "practice": "una frase de la lista propia del consultorio",
}

TRANSCRIPT_MARK = "transcripción automática, verifíquela con la grabación"

LANGUAGE_NAME = "Spanish"  # as an English-speaking clinician is told it
VOICE = "es-419"  # espeak-ng's Latin American Spanish

#: Asterisk's Spanish core sounds (asterisk-core-sounds-es-wav): "2 de enero de 1990",
#: "8:00 a. m.", "viernes 27 de noviembre".
ASTERISK_LANGUAGE = "es"
SAY_DATE = "d'digits/es-de'B'digits/es-de'Y"
SAY_CLOCK = "IMp"
SAY_WEEKDAY_DATE = "Ad'digits/es-de'B"

#: Per-practice words a clinician hears first ({practice} filled in when prepared).
SCREEN_INTROS = {
    "live": "Este es el servicio de contestación fuera de horario de {practice}, con una "
            "llamada urgente.",
    "callback": "Este es el servicio de contestación fuera de horario de {practice}, con un "
                "mensaje que necesita una llamada de vuelta.",
}

#: The fallback dialplan's prompts in Spanish (the fallback itself plays the English ones:
#: it runs without the controller and does not know the practice's language).
FALLBACK = {
    "fallback-apology": "Disculpe la espera. Por favor, no cuelgue mientras le comunicamos "
                        "con el médico de guardia.",
    "fallback-record": "No pudimos comunicarnos con nadie en este momento. Después del tono, "
                       "diga su nombre, el número donde podemos llamarle y el motivo de su "
                       "llamada. Oprima la tecla de numeral al terminar.",
    "fallback-thanks": "Gracias. Su mensaje ha sido grabado y se pasará al médico de guardia. "
                       "Adiós.",
    "fallback-screen": "Este es el servicio de contestación con una llamada urgente de un "
                       "paciente. Oprima 1 para aceptar la llamada.",
    "moh/hold": "Por favor, no cuelgue. Seguimos tratando de comunicarnos con el médico de "
                "guardia.",
    "fallback-intake": "Gracias por llamar al servicio de contestación fuera de horario. Si "
                       "se trata de una emergencia que pone en peligro la vida, cuelgue y "
                       "marque el 911. Si su llamada es urgente y no puede esperar a que abra "
                       "el consultorio, oprima 1 ahora para comunicarse con el médico de "
                       "guardia. De lo contrario, no cuelgue para dejar un mensaje.",
    "fallback-message": "Después del tono, diga su nombre, el número donde podemos llamarle y "
                        "el motivo de su llamada. Oprima la tecla de numeral al terminar.",
}
