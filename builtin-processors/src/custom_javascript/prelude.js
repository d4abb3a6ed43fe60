// The globals and helpers `custom.javascript` sets up before the user's script (see
// custom_javascript.rs). Evaluated as one expression: a function of the native `encode`,
// `emit` and `capture`, returning `[runner, metadataText]`.
(function (encode, emit, capture) {
  "use strict";
  const U8 = Uint8Array, AB = ArrayBuffer, isView = ArrayBuffer.isView, P = Proxy;
  const isArray = Array.isArray, keys = Object.keys, create = Object.create;
  const fromCharCode = String.fromCharCode, Str = String, Err = TypeError;
  const stringify = JSON.stringify, apply = Reflect.apply;
  const OP = Object.prototype, AP = Array.prototype;

  // What JSON.stringify makes of the member `k` holding `v` (`{}` if it is left out): the
  // native `capture` falls back on it for values it does not convert itself.
  function member(k, v) {
    return stringify({ [k]: v });
  }

  // Bytes as a string of one char each (what Rust reads back).
  function latin1(bytes) {
    // Up to 8192 bytes in one call (no sub-array; one string built, where char by char
    // made and freed a string per byte), longer ones in chunks of that size.
    if (bytes.length <= 8192) return apply(fromCharCode, null, bytes);
    let text = "";
    for (let i = 0; i < bytes.length; i += 8192) {
      text += fromCharCode.apply(null, bytes.subarray(i, i + 8192));
    }
    return text;
  }
  function view(v) {
    if (v instanceof U8) return v;
    if (v instanceof AB) return new U8(v);
    if (isView(v)) return new U8(v.buffer, v.byteOffset, v.byteLength);
    return undefined;
  }
  function kind(v) {
    return v === null ? "null" : isArray(v) ? "an array" : typeof v;
  }
  // What Rust reads back, in one flat array `out`: at `i` a tag and at `i + 1` a value:
  // [0] none, [1, latin1] bytes, [2, text] text, [3, slot] structured data (`capture`
  // converts the object, as JSON.stringify would see it, to Rust's form right here and
  // answers the slot Rust finds it in).
  function position(out, v) {
    if (v === null || v === undefined) {
      out[0] = 0;
    } else if (typeof v === "string") {
      out[0] = 2; out[1] = v;
    } else {
      let b = view(v);
      if (b === undefined && isArray(v)) b = U8.from(v);
      if (b === undefined) throw new Err("Position must be a string or bytes, not " + kind(v));
      out[0] = 1; out[1] = latin1(b);
    }
  }
  function data(out, i, v, name) {
    if (v === null || v === undefined) {
      out[i] = 0;
      return;
    }
    if (typeof v === "string") {
      out[i] = 2; out[i + 1] = v;
      return;
    }
    if (typeof v === "object") {
      // view(v) and the short case of latin1(b), inlined: this runs for every record, and
      // a JavaScript call costs about as much as the checks.
      const b = v instanceof U8 ? v : v instanceof AB ? new U8(v) :
        isView(v) ? new U8(v.buffer, v.byteOffset, v.byteLength) : undefined;
      if (b !== undefined) {
        out[i] = 1; out[i + 1] = b.length <= 8192 ? apply(fromCharCode, null, b) : latin1(b);
        return;
      }
      if (!isArray(v)) {
        out[i] = 3; out[i + 1] = capture(v, OP, AP, member, stringify);
        return;
      }
    }
    throw new Err(name + " must be raw data (RawData()), structured data (an object) " +
      "or null, not " + kind(v));
  }
  // The record `process` returned as one array for Rust: position at 0 and 1, the
  // operation's name at 2, key at 3 and 4, before at 5 and 6, after at 7 and 8, then the
  // metadata as key, value, key, value, ... (all strings). Null drops the record.
  function exportRecord(r) {
    if (r === null || r === undefined) return null;
    if (typeof r !== "object" || isArray(r)) {
      throw new Err("process() must return a record or null, not " + kind(r));
    }
    if (typeof r.then === "function") {
      throw new Err("process() returned a promise; it must return a record or null");
    }
    const out = [0, null, "", 0, null, 0, null, 0, null];
    const m = r.Metadata;
    if (m !== null && m !== undefined) {
      if (typeof m !== "object") throw new Err("Metadata must be an object, not " + kind(m));
      const ks = keys(m);
      for (let i = 0, n = 9; i < ks.length; i++) {
        const k = ks[i], v = m[k];
        out[n++] = k;
        // String(v) is v for a string: spare the call.
        out[n++] = typeof v === "string" ? v : Str(v);
      }
    }
    const p = r.Payload, op = r.Operation;
    if (p !== null && p !== undefined && typeof p !== "object") {
      throw new Err("Payload must be an object, not " + kind(p));
    }
    position(out, r.Position);
    out[2] = op === null || op === undefined ? "" : Str(op);
    data(out, 3, r.Key, "Key");
    if (p) {
      data(out, 5, p.Before, "Payload.Before");
      data(out, 7, p.After, "Payload.After");
    }
    return out;
  }
  // The script's `process` wrapped for Rust: one call from Rust per record, which builds
  // the record object the script is given (as assignments, in this order, as Rust did
  // before), calls `process` and exports what it returns.
  function runner(process) {
    return function run(position, operation, metadata, key, before, after) {
      const record = {};
      record.Position = position;
      record.Operation = operation;
      record.Metadata = metadata;
      record.Key = key;
      const payload = {};
      payload.Before = before;
      payload.After = after;
      record.Payload = payload;
      return exportRecord(process(record));
    };
  }

  const g = globalThis;
  g.RawData = function RawData(text) {
    return arguments.length > 0 ? encode(text) : new U8(0);
  };
  g.StructuredData = function StructuredData() {
    return {};
  };
  g.Record = function Record() {
    return {
      Position: null, Operation: "", Metadata: {}, Key: null,
      Payload: { Before: null, After: null },
    };
  };

  // Zerolog-style events: logger.Info().Str("k", "v").Msg("text").
  function format(template, args) {
    let i = 0;
    return Str(template).replace(/%[-+# 0-9.]*([a-zA-Z%])/g, (all, verb) =>
      verb === "%" ? "%" : i < args.length ? Str(args[i++]) : all);
  }
  function event(level) {
    const fields = {};
    let written = false;
    function write(message) {
      if (written) return;
      written = true;
      let json = null;
      if (keys(fields).length > 0) {
        try { json = stringify(fields); } catch (e) { json = null; }
      }
      emit(level, Str(message), json);
    }
    const methods = {
      Msg(message) { write(message === undefined ? "" : message); },
      Msgf(template, ...args) { write(format(template, args)); },
      Send() { write(""); },
      Err(error) {
        fields.error = error === null || error === undefined ? null : Str(error);
        return proxy;
      },
      Enabled() { return true; },
    };
    // Any other method adds a field (Str, Int, Bool, Any, Interface, ...).
    const proxy = new P(methods, {
      get(target, name) {
        if (name in target) return target[name];
        if (typeof name !== "string") return undefined;
        return function (key, value) {
          if (arguments.length >= 2) fields[Str(key)] = value;
          return proxy;
        };
      },
    });
    return proxy;
  }
  const logger = {};
  for (const name of ["Trace", "Debug", "Info", "Warn", "Error", "Fatal", "Panic"]) {
    const level = name.toLowerCase();
    logger[name] = () => event(level);
  }
  logger.Log = () => event("info");
  logger.Print = (...args) => event("debug").Msg(args.map(Str).join(" "));
  logger.Printf = (template, ...args) => event("debug").Msgf(template, ...args);
  g.logger = logger;

  // The metadata pairs of an exported record as the JSON object text Rust parses when it
  // cannot read the strings (lone surrogates), so that such a record fails as it always did.
  function metadataText(out) {
    const metadata = create(null);
    for (let i = 9; i < out.length; i += 2) metadata[out[i]] = out[i + 1];
    return stringify(metadata);
  }

  return [runner, metadataText];
})
