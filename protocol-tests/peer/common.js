'use strict';
// Shared helpers for smsc.js / esme.js: JSON-lines I/O, PDU <-> JSON, request tracking.
// stdout carries JSON lines only; diagnostics go to stderr.
const readline = require('readline');
const smpp = require('smpp');

// Raw octets: the library decodes short_message / message_payload by data_coding into
// {udh, message} and time fields into Date objects. Both filters are exported objects shared
// by the PDU definitions, so replacing their decode hooks keeps received values as the raw
// Buffer / string. The original decoder is kept to report the library's own reading as text.
const libMessageDecode = smpp.filters.message.decode;
smpp.filters.message.decode = (value) => value;
smpp.filters.time.decode = (value) => value;

// Keep the exact bytes of every PDU read or written (non-enumerable, so the library's own
// `for (key in pdu)` loops ignore it); reported as "pdu_hex".
const { PDU } = smpp;
const libFromBuffer = PDU.prototype.fromBuffer;
const libToBuffer = PDU.prototype.toBuffer;
function keepRaw(pdu, buffer) {
  Object.defineProperty(pdu, '_raw', { value: buffer, configurable: true, enumerable: false });
}
PDU.prototype.fromBuffer = function (buffer) {
  keepRaw(this, buffer.length >= 4 ? buffer.slice(0, buffer.readUInt32BE(0)) : buffer);
  return libFromBuffer.call(this, buffer);
};
PDU.prototype.toBuffer = function () {
  const buffer = libToBuffer.call(this);
  keepRaw(this, buffer);
  return buffer;
};

// The library silently skips command_length 0 and wedges on 1..15; make those parse errors.
const libCommandLength = PDU.commandLength;
PDU.commandLength = function (stream) {
  const length = libCommandLength(stream);
  if (length !== false && length < 16) throw new Error(`invalid command_length ${length}`);
  return length;
};

const HEADER = new Set(['command_length', 'command_id', 'command_status', 'sequence_number', 'command']);

function emit(obj) {
  process.stdout.write(JSON.stringify(obj) + '\n');
}

function emitError(message, extra) {
  emit({ event: 'error', message: String(message), ...extra });
}

function jsonValue(v) {
  if (Buffer.isBuffer(v)) return v.toString('hex');
  if (Array.isArray(v)) return v.map(jsonValue);
  if (v instanceof Date) return v.toISOString();
  if (v && typeof v === 'object') {
    const o = {};
    for (const k of Object.keys(v)) o[k] = jsonValue(v[k]);
    return o;
  }
  return v;
}

function tlvName(tag) {
  return 'tlv_0x' + tag.toString(16).padStart(4, '0');
}

// What the library itself would decode a message field to (informational; lossy, see README).
function libText(pdu, value, skipUdh) {
  try {
    const r = libMessageDecode.call(pdu, value, skipUdh);
    return r && typeof r.message === 'string' ? r.message : undefined;
  } catch (e) {
    return undefined;
  }
}

function pduFields(pdu) {
  const f = {};
  for (const key of Object.keys(pdu)) {
    if (HEADER.has(key) || pdu[key] === undefined) continue;
    const v = pdu[key];
    // Unregistered TLVs are stored by the library under their numeric tag.
    let name = /^\d+$/.test(key) ? tlvName(Number(key)) : key;
    if (Buffer.isBuffer(v)) name += '_hex';
    f[name] = jsonValue(v);
  }
  if (Buffer.isBuffer(pdu.short_message)) {
    const t = libText(pdu, pdu.short_message, false);
    if (t !== undefined) f.short_message_text = t;
  }
  if (Buffer.isBuffer(pdu.message_payload)) {
    const skip = Buffer.isBuffer(pdu.short_message) && pdu.short_message.length > 0;
    const t = libText(pdu, pdu.message_payload, skip);
    if (t !== undefined) f.message_payload_text = t;
  }
  return f;
}

function pduEvent(event, k, pdu) {
  return {
    event,
    session: k,
    command: pdu.command,
    command_id: pdu.command_id,
    sequence_number: pdu.sequence_number,
    command_status: pdu.command_status,
    fields: pduFields(pdu),
    pdu_hex: pdu._raw ? pdu._raw.toString('hex') : undefined,
  };
}

// Build PDU options from a JSON command: `<name>_hex` -> Buffer, TLVs may be top-level or in
// "tlvs". `tlv_0xNNNN_hex` sends an arbitrary (unregistered) TLV.
const NON_FIELDS = new Set(['id', 'cmd', 'session', 'tlvs', 'count']);
function buildParams(command, c) {
  const params = smpp.commands[command].params || {};
  const out = {};
  for (const [key, v] of Object.entries({ ...c, ...(c.tlvs || {}) })) {
    if (NON_FIELDS.has(key)) continue;
    const m = /^(.*)_hex$/.exec(key);
    const name = m ? m[1] : key;
    const custom = /^tlv_0x([0-9a-fA-F]{1,4})$/.exec(name);
    if (custom && m && !(name in smpp.tlvs)) {
      smpp.addTLV(name, { id: parseInt(custom[1], 16), type: smpp.types.tlv.buffer });
    }
    if (!(name in params) && !(name in smpp.tlvs)) throw new Error(`unknown field ${key} for ${command}`);
    if (m && (typeof v !== 'string' || !/^([0-9a-fA-F]{2})*$/.test(v))) throw new Error(`bad hex in ${key}`);
    out[name] = m ? Buffer.from(v, 'hex') : v;
  }
  // The library's default data_coding is null (auto-detect for strings); it writes 0 then.
  if ('data_coding' in params && out.data_coding == null) out.data_coding = 0;
  return out;
}

// Per-connection bookkeeping: report every received PDU, drop the connection on any error
// (a parse error leaves the library's session unable to read further), and fail pending
// requests when the connection goes away.
function attachSession(session, k, onPdu) {
  session.k = k;
  session.pending = new Map(); // sequence_number -> command id
  session.on('pdu', (pdu) => {
    try {
      emit(pduEvent('pdu', k, pdu));
      onPdu(session, pdu);
    } catch (e) {
      emitError(e.message, { session: k });
    }
  });
  session.on('error', (e) => {
    emitError(e.message, { session: k });
    session.destroy();
  });
  session.on('close', () => {
    emit({ event: 'disconnected', session: k });
    for (const [seq, id] of session.pending) {
      emit({ event: 'done', id, session: k, sequence_number: seq, error: 'connection closed before response' });
    }
    session.pending.clear();
  });
}

function send(session, pdu, afterWrite) {
  if (!session.send(pdu, afterWrite)) throw new Error('connection not writable');
  emit(pduEvent('sent', session.k, pdu));
}

function respond(session, pdu, options, afterWrite) {
  send(session, pdu.response(options), afterWrite);
}

function genericNack(session, pdu, status) {
  send(session, new smpp.PDU('generic_nack', { sequence_number: pdu.sequence_number, command_status: status }));
}

// Send a request and ack command `id` with its response: done{command_status, response_status,
// response_command, ...extra(resp)}; id null = no ack. onResp runs after the ack.
function request(session, command, params, id, extra, onResp) {
  const pdu = new smpp.PDU(command, params);
  const ok = session.send(pdu, (resp) => {
    session.pending.delete(pdu.sequence_number);
    if (id !== null) emit({
      event: 'done', id, session: session.k, sequence_number: pdu.sequence_number,
      command_status: resp.command_status, response_status: resp.command_status,
      response_command: resp.command, ...(extra ? extra(resp) : {}),
    });
    if (onResp) onResp(resp);
  });
  if (!ok) throw new Error('connection not writable');
  if (id !== null) session.pending.set(pdu.sequence_number, id);
  emit(pduEvent('sent', session.k, pdu));
}

// Read JSON commands from stdin; handlers[cmd](c) runs each one. A handler that throws acks
// with done{error}. Commands are not serialised: wait for "done" before sending the next one
// if order matters. onEnd runs when stdin closes.
function commandLoop(handlers, onEnd) {
  const rl = readline.createInterface({ input: process.stdin, terminal: false });
  rl.on('line', (line) => {
    if (!line.trim()) return;
    let c;
    try {
      c = JSON.parse(line);
    } catch (e) {
      emitError(`bad command line: ${e.message}`);
      return;
    }
    try {
      const h = Object.prototype.hasOwnProperty.call(handlers, c.cmd) ? handlers[c.cmd] : null;
      if (!h) throw new Error(`unknown cmd ${JSON.stringify(c.cmd)}`);
      h(c);
    } catch (e) {
      emit({ event: 'done', id: c.id, error: e.message });
    }
  });
  rl.on('close', onEnd);
}

function parseArgs(argv, defaults) {
  const out = { ...defaults };
  for (let i = 0; i < argv.length; i++) {
    const m = /^--([a-z-]+)(?:=(.*))?$/.exec(argv[i]);
    if (!m || !(m[1] in defaults)) {
      console.error(`unknown argument ${argv[i]}; known: ${Object.keys(defaults).map((k) => '--' + k).join(' ')}`);
      process.exit(2);
    }
    out[m[1]] = m[2] !== undefined ? m[2] : argv[++i];
  }
  return out;
}

module.exports = {
  smpp, emit, emitError, pduFields, attachSession, send, respond, genericNack, request,
  buildParams, commandLoop, parseArgs,
};
