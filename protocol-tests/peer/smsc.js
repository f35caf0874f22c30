'use strict';
// node `smpp` acting as an SMSC. See README.md for the JSON-lines protocol.
const fs = require('fs');
const {
  smpp, emit, emitError, attachSession, send, respond, genericNack, request, buildParams,
  commandLoop, parseArgs,
} = require('./common');

const args = parseArgs(process.argv.slice(2), {
  port: '0', 'system-id': 'smsflow', password: 'smsflow', 'tls-cert': '', 'tls-key': '',
});
const E = smpp.errors;
const sessions = new Map(); // K -> session, open connections only
let nextSession = 1;
let nextMessageId = 1;
let throttle = { count: 0, status: E.ESME_RTHROTTLED };

function handle(session, pdu) {
  const k = session.k;
  if (pdu.isResponse()) return; // responses to our requests are acked by request()
  switch (pdu.command) {
    case 'bind_transceiver':
    case 'bind_transmitter':
    case 'bind_receiver': {
      const mode = pdu.command.slice('bind_'.length);
      if (session.bound) {
        respond(session, pdu, { command_status: E.ESME_RALYBND });
      } else if (pdu.system_id === args['system-id'] && pdu.password === args.password) {
        session.bound = mode;
        respond(session, pdu, { system_id: 'NODESMSC', sc_interface_version: 0x34 });
        emit({ event: 'bound', session: k, mode, system_id: pdu.system_id });
      } else {
        respond(session, pdu, { command_status: E.ESME_RINVPASWD });
        emit({ event: 'bind_rejected', session: k, mode, system_id: pdu.system_id, command_status: E.ESME_RINVPASWD });
      }
      break;
    }
    case 'submit_sm':
      if (!session.bound || session.bound === 'receiver') {
        respond(session, pdu, { command_status: E.ESME_RINVBNDSTS });
      } else if (throttle.count > 0) {
        throttle.count--;
        respond(session, pdu, { command_status: throttle.status });
        emit({ event: 'throttled', session: k, sequence_number: pdu.sequence_number, command_status: throttle.status });
      } else {
        respond(session, pdu, { message_id: (nextMessageId++).toString(16).toUpperCase() });
      }
      break;
    case 'enquire_link':
      respond(session, pdu);
      break;
    case 'unbind':
      session.bound = null;
      respond(session, pdu, {}, () => session.close());
      break;
    case 'alert_notification': // has no response
      break;
    default: // unknown command ids and operations this SMSC does not implement
      genericNack(session, pdu, E.ESME_RINVCMDID);
  }
}

// With --tls-cert and --tls-key (PEM files) smpp's createServer makes a TLS server.
const serverOptions = args['tls-cert'] && args['tls-key']
  ? { cert: fs.readFileSync(args['tls-cert']), key: fs.readFileSync(args['tls-key']) }
  : {};
const server = smpp.createServer(serverOptions, (session) => {
  const k = nextSession++;
  sessions.set(k, session);
  session.on('close', () => sessions.delete(k));
  attachSession(session, k, handle);
  emit({ event: 'connected', session: k, remote_port: session.socket.remotePort });
});
server.on('error', (e) => emitError(e.message));
server.on('tlsClientError', (e) => emit({ event: 'tls_error', message: e.message }));
server.listen(Number(args.port), '127.0.0.1', () => emit({
  event: 'listening', port: server.address().port, tls: !!serverOptions.cert,
}));

// Explicit "session", else the most recent open session satisfying `pred`.
function pick(c, pred) {
  if (c.session !== undefined) {
    const s = sessions.get(c.session);
    if (!s) throw new Error(`no open session ${c.session}`);
    return s;
  }
  const s = [...sessions.values()].reverse().find(pred);
  if (!s) throw new Error('no suitable bound session');
  return s;
}
const isBound = (s) => !!s.bound;
const canReceive = (s) => s.bound === 'transceiver' || s.bound === 'receiver';

function shutdown() {
  for (const s of sessions.values()) s.destroy();
  server.close();
  process.exit(0);
}

commandLoop({
  deliver_sm: (c) => request(pick(c, canReceive), 'deliver_sm', buildParams('deliver_sm', c), c.id),
  enquire_link: (c) => request(pick(c, isBound), 'enquire_link', {}, c.id),
  unbind: (c) => {
    const s = pick(c, isBound);
    request(s, 'unbind', {}, c.id, null, () => { s.bound = null; s.close(); });
  },
  throttle: (c) => {
    throttle = { count: c.count, status: c.command_status ?? E.ESME_RTHROTTLED };
    emit({ event: 'done', id: c.id, count: throttle.count, command_status: throttle.status });
  },
  close: (c) => {
    const targets = c.session !== undefined ? [pick(c)] : [...sessions.values()];
    const closed = targets.map((s) => new Promise((resolve) => s.destroy(resolve)));
    Promise.all(closed).then(() => emit({ event: 'done', id: c.id, closed: targets.map((s) => s.k) }));
  },
  quit: (c) => {
    emit({ event: 'done', id: c.id });
    shutdown();
  },
}, shutdown);
