// A Salesforce streaming consumer written the way a Node user would: the CometD JavaScript
// library (npm "cometd") made to run in Node by "cometd-nodejs-client", plus the replay
// extension that Salesforce's own samples use. It is the third-party client the emulator is
// tested with.
//
//   node cometd_client.mjs
//
// Configuration comes from the environment: SF_LOGIN_URL, SF_CONSUMER_KEY,
// SF_CONSUMER_SECRET, SF_USERNAME, SF_PASSWORD (the OAuth password flow), SF_CHANNEL, SF_REPLAY
// (the replay id of the first subscription: -1, -2 or an event's id) and SF_API_VERSION.
// Every step is printed on stdout as one JSON object per line ({"step": ...}); tokens never
// are. The client disconnects and exits with status 0 when its standard input closes, and
// with status 1 on an unexpected failure.

import { adapt } from "cometd-nodejs-client";
import { CometD } from "cometd";

adapt();

const env = process.env;
const channel = env.SF_CHANNEL;
const firstReplay = Number(env.SF_REPLAY);

function print(step, fields) {
  process.stdout.write(JSON.stringify({ step, ...fields }) + "\n");
}

function fail(error) {
  print("failed", { error: String(error) });
  process.exit(1);
}

// The OAuth username-password flow: a plain form POST to the token endpoint.
async function login() {
  const response = await fetch(`${env.SF_LOGIN_URL}/services/oauth2/token`, {
    method: "POST",
    body: new URLSearchParams({
      grant_type: "password",
      client_id: env.SF_CONSUMER_KEY,
      client_secret: env.SF_CONSUMER_SECRET,
      username: env.SF_USERNAME,
      password: env.SF_PASSWORD,
    }),
  });
  const body = await response.json();
  if (!response.ok) {
    throw new Error(`login failed with ${response.status}: ${body.error}`);
  }
  print("login", { status: response.status, instance_url: body.instance_url });
  return body;
}

// Salesforce's replay extension: "replay": true on the handshake, and on every subscribe
// "ext": {"replay": {channel: id}} with the id of the last event received (first: SF_REPLAY),
// so that a subscription made again after a new handshake resumes where it stopped.
class ReplayExtension {
  constructor(initial) {
    this.replay = initial;
    this.enabled = false;
  }

  outgoing(message) {
    if (message.channel === "/meta/handshake") {
      message.ext = { ...message.ext, replay: true };
    } else if (message.channel === "/meta/subscribe") {
      message.ext = { ...message.ext, replay: { [message.subscription]: this.replay } };
    }
    return message;
  }

  incoming(message) {
    if (message.channel === "/meta/handshake" && message.successful) {
      this.enabled = Boolean(message.ext && message.ext.replay === true);
    }
    const event = message.data && message.data.event;
    if (event && typeof event.replayId === "number" && message.channel === channel) {
      this.replay = event.replayId;
    }
    return message;
  }
}

async function main() {
  const token = await login();
  const cometd = new CometD();
  // Salesforce serves long polling only.
  cometd.unregisterTransport("websocket");
  cometd.unregisterTransport("callback-polling");
  cometd.configure({
    url: `${token.instance_url}/cometd/${env.SF_API_VERSION}`,
    requestHeaders: { Authorization: `${token.token_type} ${token.access_token}` },
    // Salesforce's endpoint takes no /handshake, /connect... suffix.
    appendMessageTypeToURL: false,
    logLevel: "warn",
  });
  const replay = new ReplayExtension(firstReplay);
  cometd.registerExtension("replay", replay);

  cometd.addListener("/meta/connect", (message) => {
    if (!message.successful) {
      print("connect_failed", { error: message.error, advice: message.advice });
    }
  });
  // The handshake listener subscribes, so that every new session (after an expiry, a
  // server disconnect...) subscribes again.
  cometd.addListener("/meta/handshake", (message) => {
    print("handshake", {
      successful: message.successful,
      client_id: message.clientId,
      replay_enabled: replay.enabled,
      error: message.error,
    });
    if (!message.successful) {
      return;
    }
    const from = replay.replay;
    cometd.subscribe(
      channel,
      (event) => print("event", { channel: event.channel, data: event.data }),
      (reply) => print("subscribe", { successful: reply.successful, replay: from, error: reply.error }),
    );
  });

  cometd.handshake();

  process.stdin.on("end", () => {
    cometd.disconnect(() => {
      print("disconnected", {});
      process.exit(0);
    });
    setTimeout(() => process.exit(0), 2000).unref();
  });
  process.stdin.resume();
}

main().catch(fail);
