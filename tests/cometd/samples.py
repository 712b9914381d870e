"""Server replies as real Bayeux servers send them.

The Salesforce shapes are copied from ``salesforce-protocol.md`` (sections 2, 3 and 5);
the faye and vanilla CometD forms of "unknown client" are the ones those servers emit.
Every call of :func:`load` decodes the JSON again, so tests never share a dict.
"""

from __future__ import annotations

import json
from typing import Any

from aiosfstream.typing import Message

# -- Salesforce: handshake -------------------------------------------------------------
#: Real 2023 handshake reply: no ``advice``, no ``reestablish``.
HANDSHAKE_SUCCESS = (
    '{"ext":{"replay":true,"payload.format":true},"minimumVersion":"1.0",'
    '"clientId":"1cyu4thyxh3fgv1nqwcvebt3o9x","supportedConnectionTypes":["long-polling"],'
    '"channel":"/meta/handshake","id":"305","version":"1.0","successful":true}'
)
#: Handshake reply from the Salesforce documentation.
HANDSHAKE_SUCCESS_DOC = (
    '{"ext":{"replay":true,"payload.format":true},"minimumVersion":"1.0",'
    '"clientId":"41kdiuvgig2tfxdh9weakuiwyh","supportedConnectionTypes":["long-polling"],'
    '"channel":"/meta/handshake","id":"1","version":"1.0","successful":true,"reestablish":false}'
)
#: Re-handshake refused because the token expired.
HANDSHAKE_AUTH_INVALID = (
    '{"ext":{"sfdc":{"failureReason":"401::Authentication invalid"}},'
    '"advice":{"reconnect":"none"},"channel":"/meta/handshake",'
    '"error":"403::Handshake denied","successful":false}'
)
#: Handshake refused by the per-server connection limit.
HANDSHAKE_DENIED_LIMIT = (
    '{"channel":"/meta/handshake","id":"1","error":"403::Handshake denied","successful":false,'
    '"advice":{"reconnect":"none"},"ext":{"sfdc":{"failureReason":"403::To protect all '
    "customers from excessive use and Denial of Service attacks, we limit the number of "
    "simultaneous connections per server.  Your request has been denied because this limit "
    'has been exceeded.  Please try your request again later."},"replay":true,'
    '"payload.format":true}}'
)

# -- Salesforce: connect ---------------------------------------------------------------
#: The first ``/meta/connect`` after a handshake: the only one that carries advice.
FIRST_CONNECT = (
    '{"clientId":"hbx1v2cxebbeder11s99dqkxmasre",'
    '"advice":{"interval":0,"timeout":110000,"reconnect":"retry"},'
    '"channel":"/meta/connect","id":"85","successful":true}'
)
#: An idle long poll that returned after 110 s.
IDLE_CONNECT = (
    '{"clientId":"hbx1v2cxebbeder11s99dqkxmasre","channel":"/meta/connect","id":"86",'
    '"successful":true}'
)
#: Real ``403::Unknown client``: has an id, no clientId.
UNKNOWN_CLIENT_403 = (
    '{"advice":{"interval":0,"reconnect":"handshake"},"channel":"/meta/connect","id":"304",'
    '"error":"403::Unknown client","successful":false}'
)
#: ``403::Unknown client`` as the Salesforce documentation shows it: no channel, id, clientId.
UNKNOWN_CLIENT_403_DOC = (
    '{"error":"403::Unknown client","successful":false,'
    '"advice":{"interval":0,"reconnect":"handshake"}}'
)
#: ``403::Unknown client`` seen once with a clientId and ``reconnect: none``.
UNKNOWN_CLIENT_403_NONE = (
    '{"clientId":"1q1ib66fvm7kli1gfoauu95i78g","advice":{"interval":0,"reconnect":"none"},'
    '"channel":"/meta/connect","id":"12","error":"403::Unknown client","successful":false}'
)
#: faye's form: the client id is the argument of a 401.
UNKNOWN_CLIENT_FAYE = (
    '{"channel":"/meta/connect","successful":false,'
    '"error":"401:2v1ozicqq5hbjy11wiv2c7puqxf7:Unknown client",'
    '"advice":{"reconnect":"handshake","interval":0}}'
)
#: Vanilla CometD's form.
UNKNOWN_CLIENT_402 = (
    '{"channel":"/meta/connect","id":"9","successful":false,"error":"402::Unknown client",'
    '"advice":{"reconnect":"handshake","interval":0}}'
)
#: Vanilla CometD's form without advice.
UNKNOWN_CLIENT_402_NO_ADVICE = (
    '{"channel":"/meta/connect","id":"9","successful":false,"error":"402::Unknown client"}'
)
#: Token revoked (note the integer id).
CONNECT_AUTH_INVALID = (
    '{"clientId":"1q1ib66fvm7kli1gfoauu95i78g","advice":{"reconnect":"none","interval":0},'
    '"channel":"/meta/connect","id":7,"error":"401::Authentication invalid","successful":false}'
)
#: 503 on connect: the cause is in failureReason.
CONNECT_SERVER_BUSY = (
    '{"channel":"/meta/connect","id":"6","error":"401::Authentication invalid",'
    '"successful":false,"ext":{"sfdc":{"failureReason":"503::Server is too busy.  Please try '
    'your request again later."}},"clientId":"b1unwa43ckd43m16v60gs6v2yv7",'
    '"advice":{"reconnect":"none","interval":0}}'
)
#: Real user mismatch error.
CONNECT_USER_MISMATCH = (
    '{"clientId":"*****","advice":{"reconnect":"none","interval":0},"channel":"/meta/connect",'
    '"id":"7","error":"400::Authenticated user id does not match the session\'s user id",'
    '"successful":false}'
)

# -- Salesforce: subscribe -------------------------------------------------------------
SUBSCRIBE_SUCCESS = (
    '{"clientId":"41kdiuvgig2tfxdh9weakuiwyh","channel":"/meta/subscribe","id":"15",'
    '"subscription":"/topic/InvoiceStatementUpdates","successful":true}'
)
SUBSCRIBE_NO_SUCH_TOPIC = (
    '{"clientId":"4xg15eeny70m2bbfjbxps2fqlt00","channel":"/meta/subscribe","id":"7",'
    '"subscription":"/topic/AccountUpdates","error":"400::The channel you requested to '
    'subscribe to does not exist {/topic/AccountUpdates}","successful":false}'
)
#: The replay error, with its two spaces after "invalid.".
REPLAY_ERROR = (
    '{"clientId":"i9lforkm2jvg2z19w4a0vngqcao","channel":"/meta/subscribe",'
    '"id":"79017b98-a09a-40f8-93d4-8c47a63c0a6a","subscription":"/data/ChangeEvents",'
    '"error":"400::The replayId {1} you provided was invalid.  Please provide a valid ID, -2 to '
    'replay all events, or -1 to replay only new events.","successful":false}'
)
REPLAY_ERROR_MESSAGE = (
    "The replayId {1} you provided was invalid.  Please provide a valid ID, -2 to "
    "replay all events, or -1 to replay only new events."
)

# -- Salesforce: events ----------------------------------------------------------------
PUSHTOPIC_EVENT = (
    '{"channel":"/topic/InvoiceStatementUpdates","data":{"event":{"createdDate":'
    '"2016-03-29T16:40:08.208Z","replayId":13,"type":"created"},"sobject":{"Name":"INV-0001",'
    '"Id":"a00D0000008o6y8IAA","Status__c":"Open"}}}'
)
GENERIC_EVENT = (
    '{"clientId":"a1ps4wpe52qytvcvbsko09tapc","data":{"event":{"createdDate":'
    '"2016-03-29T19:05:28.334Z","replayId":55},"payload":"This is a message."},'
    '"channel":"/u/TestStreaming"}'
)
PLATFORM_EVENT = (
    '{"data":{"schema":"dffQ2QLzDNHqwB8_sHMxdA","payload":{"CreatedDate":'
    '"2017-04-09T18:31:40.517Z","CreatedById":"005D0000001cSZs","Printer_Model__c":"XZO-5",'
    '"Serial_Number__c":"12345","Ink_Percentage__c":0.2},"event":{"EventUuid":'
    '"2ec0e371-1395-457f-9275-be1b527a72f7","replayId":2}},"channel":"/event/Low_Ink__e"}'
)
CDC_EVENT = (
    '{"data":{"schema":"IeRuaY6cbI_HsV8Rv1Mc5g","payload":{"ChangeEventHeader":{"entityName":'
    '"Account","recordIds":["<record_ID>"],"changeType":"CREATE","changeOrigin":'
    '"com.salesforce.core","transactionKey":"001b7375-0086-250e-e6ca-b99bc3a8b69f",'
    '"sequenceNumber":1,"isTransactionEnd":true,"commitTimestamp":1501010206653,'
    '"commitNumber":92847272780,"commitUser":"<User_ID>"},"Name":"Acme"},'
    '"event":{"replayId":6421}},"channel":"/data/ChangeEvents"}'
)
EVENTS = (PUSHTOPIC_EVENT, GENERIC_EVENT, PLATFORM_EVENT, CDC_EVENT)

#: A server-initiated ``/meta/disconnect`` (API 64.0+); no verbatim sample exists, this is
#: the standard Bayeux shape.
SERVER_DISCONNECT = '{"channel":"/meta/disconnect","successful":true}'


def load(sample: str, *, drop: tuple[str, ...] = (), **fields: Any) -> Message:
    """Decode *sample*, remove the keys in *drop*, then set *fields*."""
    message: Message = json.loads(sample)
    for key in drop:
        message.pop(key, None)
    message.update(fields)
    return message
