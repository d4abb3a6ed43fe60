// The globals and helpers `custom.javascript` sets up before the user's script (see
// custom_javascript.rs). Evaluated as one expression: a function of the native `encode`
// and `emit`, returning `exportRecord`.
(function (encode, emit) {
  "use strict";
  const U8 = Uint8Array, AB = ArrayBuffer, isView = ArrayBuffer.isView, P = Proxy;
  const isArray = Array.isArray, keys = Object.keys, create = Object.create;
  const fromCharCode = String.fromCharCode, Str = String, Err = TypeError;
  const stringify = JSON.stringify;

  // Bytes as a string of one char each (what Rust reads back).
  function latin1(bytes) {
    const n = bytes.length;
    if (n <= 64) {
      // Short ones (positions, keys) char by char: no sub-array, no argument list.
      let short = "";
      for (let i = 0; i < n; i++) short += fromCharCode(bytes[i]);
      return short;
    }
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
  // [0] none, [1, latin1] bytes, [2, text] text, [3, json] structured data.
  function position(v) {
    if (v === null || v === undefined) return [0];
    if (typeof v === "string") return [2, v];
    const b = view(v);
    if (b !== undefined) return [1, latin1(b)];
    if (isArray(v)) return [1, latin1(U8.from(v))];
    throw new Err("Position must be a string or bytes, not " + kind(v));
  }
  function data(v, name) {
    if (v === null || v === undefined) return [0];
    if (typeof v === "string") return [2, v];
    if (typeof v === "object") {
      const b = view(v);
      if (b !== undefined) return [1, latin1(b)];
      if (!isArray(v)) return [3, stringify(v)];
    }
    throw new Err(name + " must be raw data (RawData()), structured data (an object) " +
      "or null, not " + kind(v));
  }
  function exportRecord(r) {
    if (r === null || r === undefined) return null;
    if (typeof r !== "object" || isArray(r)) {
      throw new Err("process() must return a record or null, not " + kind(r));
    }
    if (typeof r.then === "function") {
      throw new Err("process() returned a promise; it must return a record or null");
    }
    const m = r.Metadata, metadata = create(null);
    if (m !== null && m !== undefined) {
      if (typeof m !== "object") throw new Err("Metadata must be an object, not " + kind(m));
      for (const k of keys(m)) metadata[k] = Str(m[k]);
    }
    const p = r.Payload, op = r.Operation;
    if (p !== null && p !== undefined && typeof p !== "object") {
      throw new Err("Payload must be an object, not " + kind(p));
    }
    return {
      position: position(r.Position),
      operation: op === null || op === undefined ? "" : Str(op),
      metadata: stringify(metadata),
      key: data(r.Key, "Key"),
      before: p ? data(p.Before, "Payload.Before") : [0],
      after: p ? data(p.After, "Payload.After") : [0],
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

  return exportRecord;
})
