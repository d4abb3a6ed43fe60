;; A processor module that answers every Process command with each record unchanged,
;; without decoding the records: the least a module can do, so what it costs per record
;; is the host's part (encoding the batch, copying it in and out, decoding the answer).
(module
  (import "conduit" "command_request" (func $request (param i32 i32) (result i32)))
  (import "conduit" "command_response" (func $respond (param i32 i32) (result i32)))
  (memory (export "memory") 64)
  (global $next (mut i32) (i32.const 0))
  ;; CommandResponse{specify: {name: "echo", version: "v0.0.1"}}
  (data (i32.const 1024) "\12\0e\0a\04echo\22\06v0.0.1")
  (data (i32.const 1100) "\1a\00")
  (data (i32.const 1110) "\22\00")
  (data (i32.const 1120) "\32\00")
  ;; The varint at $at; sets $next to the byte after it.
  (func $varint (param $at i32) (result i32)
    (local $value i32) (local $shift i32) (local $byte i32)
    (loop $more
      (local.set $byte (i32.load8_u (local.get $at)))
      (local.set $value (i32.or (local.get $value)
        (i32.shl (i32.and (local.get $byte) (i32.const 0x7f)) (local.get $shift))))
      (local.set $shift (i32.add (local.get $shift) (i32.const 7)))
      (local.set $at (i32.add (local.get $at) (i32.const 1)))
      (br_if $more (i32.and (local.get $byte) (i32.const 0x80))))
    (global.set $next (local.get $at))
    (local.get $value))
  ;; Write $value as a varint at $at; the byte after it.
  (func $put (param $at i32) (param $value i32) (result i32)
    (loop $more
      (if (i32.ge_u (local.get $value) (i32.const 0x80))
        (then
          (i32.store8 (local.get $at) (i32.or (local.get $value) (i32.const 0x80)))
          (local.set $value (i32.shr_u (local.get $value) (i32.const 7)))
          (local.set $at (i32.add (local.get $at) (i32.const 1)))
          (br $more))))
    (i32.store8 (local.get $at) (local.get $value))
    (i32.add (local.get $at) (i32.const 1)))
  (func $varlen (param $value i32) (result i32)
    (local $n i32)
    (local.set $n (i32.const 1))
    (loop $more
      (if (i32.ge_u (local.get $value) (i32.const 0x80))
        (then
          (local.set $value (i32.shr_u (local.get $value) (i32.const 7)))
          (local.set $n (i32.add (local.get $n) (i32.const 1)))
          (br $more))))
    (local.get $n))
  (func $echo
    (local $p i32) (local $end i32) (local $out i32) (local $len i32) (local $total i32)
    ;; 0x22 <length> then the records, each 0x0a <length> <record>.
    (local.set $end (i32.add (call $varint (i32.const 4097)) (global.get $next)))
    (local.set $p (global.get $next))
    ;; The answer at 2 MiB: 0x2a, a 5-byte length filled in last, then each record as
    ;; 0x0a <length> (0x0a <length> <record>).
    (local.set $out (i32.const 2097158))
    (block $done
      (loop $each
        (br_if $done (i32.ge_u (local.get $p) (local.get $end)))
        (local.set $len (call $varint (i32.add (local.get $p) (i32.const 1))))
        (local.set $p (global.get $next))
        (i32.store8 (local.get $out) (i32.const 0x0a))
        (local.set $out (call $put (i32.add (local.get $out) (i32.const 1))
          (i32.add (i32.add (local.get $len) (i32.const 1)) (call $varlen (local.get $len)))))
        (i32.store8 (local.get $out) (i32.const 0x0a))
        (local.set $out (call $put (i32.add (local.get $out) (i32.const 1)) (local.get $len)))
        (memory.copy (local.get $out) (local.get $p) (local.get $len))
        (local.set $out (i32.add (local.get $out) (local.get $len)))
        (local.set $p (i32.add (local.get $p) (local.get $len)))
        (br $each)))
    (local.set $total (i32.sub (local.get $out) (i32.const 2097158)))
    (i32.store8 (i32.const 2097152) (i32.const 0x2a))
    ;; The length as a 5-byte varint (decoders accept the padding).
    (i32.store8 (i32.const 2097153) (i32.or (i32.and (local.get $total) (i32.const 0x7f)) (i32.const 0x80)))
    (i32.store8 (i32.const 2097154) (i32.or (i32.and (i32.shr_u (local.get $total) (i32.const 7)) (i32.const 0x7f)) (i32.const 0x80)))
    (i32.store8 (i32.const 2097155) (i32.or (i32.and (i32.shr_u (local.get $total) (i32.const 14)) (i32.const 0x7f)) (i32.const 0x80)))
    (i32.store8 (i32.const 2097156) (i32.or (i32.and (i32.shr_u (local.get $total) (i32.const 21)) (i32.const 0x7f)) (i32.const 0x80)))
    (i32.store8 (i32.const 2097157) (i32.and (i32.shr_u (local.get $total) (i32.const 28)) (i32.const 0x7f)))
    (drop (call $respond (i32.const 2097152) (i32.add (local.get $total) (i32.const 6)))))
  (func (export "_start")
    (local $n i32)
    (loop $next
      (local.set $n (call $request (i32.const 4096) (i32.const 2000000)))
      (if (i32.ge_u (local.get $n) (i32.const 0xffffff9b)) (then (return)))
      (block $done
        (if (i32.eq (i32.load8_u (i32.const 4096)) (i32.const 0x0a))
          (then (drop (call $respond (i32.const 1024) (i32.const 16))) (br $done)))
        (if (i32.eq (i32.load8_u (i32.const 4096)) (i32.const 0x12))
          (then (drop (call $respond (i32.const 1100) (i32.const 2))) (br $done)))
        (if (i32.eq (i32.load8_u (i32.const 4096)) (i32.const 0x1a))
          (then (drop (call $respond (i32.const 1110) (i32.const 2))) (br $done)))
        (if (i32.eq (i32.load8_u (i32.const 4096)) (i32.const 0x2a))
          (then (drop (call $respond (i32.const 1120) (i32.const 2))) (br $done)))
        (call $echo))
      (br $next))))
