'use strict';
// node `smpp` acting as an ESME. See README.md for the JSON-lines protocol.
const {
  smpp, emit, emitError, attachSession, respond, genericNack, request, buildParams,
  commandLoop, parseArgs,
} = require('./common');

const args = parseArgs(process.argv.slice(2), {
  host: '127.0.0.1', port: '2775', 'system-id': 'smsflow', password: 'smsflow',
  mode: 'transceiver', 'system-type': '', 'interface-version': '0x34',
});
if (!['transceiver', 'transmitter', 'receiver'].includes(args.mode)) {
  console.error(`bad --mode ${args.mode}`);
  process.exit(2);
}
const E = smpp.errors;
const K = 1; // one connection; reported as session 1 like smsc.js
let throttle = { count: 0, status: E.ESME_RTHROTTLED };

function handle(s, pdu) {
  if (pdu.isResponse()) return; // acked by request()
  switch (pdu.command) {
    case 'deliver_sm':
      if (throttle.count > 0) {
        throttle.count--;
        respond(s, pdu, { command_status: throttle.status });
        emit({ event: 'throttled', session: K, sequence_number: pdu.sequence_number, command_status: throttle.status });
      } else {
        respond(s, pdu);
      }
      break;
    case 'enquire_link':
      respond(s, pdu);
      break;
    case 'unbind':
      respond(s, pdu, {}, () => s.close());
      break;
    case 'alert_notification': // has no response
      break;
    default:
      genericNack(s, pdu, E.ESME_RINVCMDID);
  }
}

const session = smpp.connect({ host: args.host, port: Number(args.port) });
attachSession(session, K, handle);
session.on('connect', () => {
  emit({ event: 'connected', session: K });
  const bind = {
    system_id: args['system-id'], password: args.password, system_type: args['system-type'],
    interface_version: Number(args['interface-version']),
  };
  try {
    request(session, 'bind_' + args.mode, bind, null, null, (resp) => {
      emit(resp.command_status === 0
        ? { event: 'bound', command_status: 0, mode: args.mode, system_id: resp.system_id }
        : { event: 'bind_failed', command_status: resp.command_status });
    });
  } catch (e) {
    emitError(e.message);
  }
});

function shutdown() {
  session.destroy();
  process.exit(0);
}

commandLoop({
  submit_sm: (c) => request(session, 'submit_sm', buildParams('submit_sm', c), c.id,
    (resp) => ({ message_id: resp.message_id })),
  enquire_link: (c) => request(session, 'enquire_link', {}, c.id),
  unbind: (c) => request(session, 'unbind', {}, c.id, null, () => session.close()),
  throttle: (c) => {
    throttle = { count: c.count, status: c.command_status ?? E.ESME_RTHROTTLED };
    emit({ event: 'done', id: c.id, count: throttle.count, command_status: throttle.status });
  },
  quit: (c) => {
    emit({ event: 'done', id: c.id });
    shutdown();
  },
}, shutdown);
