"""The ceiling: a bare Flask endpoint that answers a fixed TwiML document, as the waitUrl would."""

from flask import Flask, Response

app = Flask(__name__)
DOCUMENT = (
    '<?xml version="1.0" encoding="UTF-8"?><Response><Say language="sv-SE" voice="Polly.Astrid">'
    "Du är nummer två i kön.</Say><Play>http://127.0.0.1/twilio/audio/hold.wav</Play></Response>"
)


@app.post("/twiml")
def twiml() -> Response:
    return Response(DOCUMENT, mimetype="application/xml")
