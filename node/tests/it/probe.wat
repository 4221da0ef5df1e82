;; The wasi-http test guest (core module, canonical ABI by hand), made a
;; component with wit-component against wit/probe.wit.
;;
;; Arguments: SCHEME AUTHORITY PATH [AUTHORITY...] (after argv[0]); "https"
;; (5 bytes) picks HTTPS, anything else HTTP. It GETs SCHEME://AUTHORITY/PATH
;; for the first AUTHORITY, then for each further one in turn, and prints
;; "status N\n" then the body, or "error N\n" with N the index of the
;; wasi:http error-code case (15 is HTTP-request-denied).
;;
;; Memory: 16..48 return area (8-aligned), 48 write's return area, 64 the
;; argument list, 256.. constant text, 512..532 digits, 4096.. bump heap.
(module
  (import "wasi:cli/environment@0.2.12" "get-arguments" (func $get_args (param i32)))
  (import "wasi:cli/stdout@0.2.12" "get-stdout" (func $get_stdout (result i32)))
  (import "wasi:io/poll@0.2.12" "[method]pollable.block" (func $block (param i32)))
  (import "wasi:io/streams@0.2.12" "[method]input-stream.blocking-read"
    (func $read (param i32 i64 i32)))
  (import "wasi:io/streams@0.2.12" "[method]output-stream.blocking-write-and-flush"
    (func $write (param i32 i32 i32 i32)))
  (import "wasi:http/types@0.2.12" "[constructor]fields" (func $fields_new (result i32)))
  (import "wasi:http/types@0.2.12" "[constructor]outgoing-request"
    (func $request_new (param i32) (result i32)))
  (import "wasi:http/types@0.2.12" "[method]outgoing-request.set-scheme"
    (func $set_scheme (param i32 i32 i32 i32 i32) (result i32)))
  (import "wasi:http/types@0.2.12" "[method]outgoing-request.set-authority"
    (func $set_authority (param i32 i32 i32 i32) (result i32)))
  (import "wasi:http/types@0.2.12" "[method]outgoing-request.set-path-with-query"
    (func $set_path (param i32 i32 i32 i32) (result i32)))
  (import "wasi:http/outgoing-handler@0.2.12" "handle" (func $handle (param i32 i32 i32 i32)))
  (import "wasi:http/types@0.2.12" "[method]future-incoming-response.subscribe"
    (func $subscribe (param i32) (result i32)))
  (import "wasi:http/types@0.2.12" "[method]future-incoming-response.get"
    (func $get (param i32 i32)))
  (import "wasi:http/types@0.2.12" "[method]incoming-response.status"
    (func $status (param i32) (result i32)))
  (import "wasi:http/types@0.2.12" "[method]incoming-response.consume"
    (func $consume (param i32 i32)))
  (import "wasi:http/types@0.2.12" "[method]incoming-body.stream"
    (func $body_stream (param i32 i32)))

  (memory (export "memory") 1)
  (global $heap (mut i32) (i32.const 4096))
  (global $out (mut i32) (i32.const 0))
  (data (i32.const 256) "status ")
  (data (i32.const 272) "error ")
  (data (i32.const 288) "\n")
  (data (i32.const 300) "usage error\n")

  (func (export "cabi_realloc") (param $old i32) (param $old_size i32) (param $align i32)
      (param $size i32) (result i32)
    (local $ptr i32)
    (local.set $ptr
      (i32.and
        (i32.add (global.get $heap) (i32.sub (local.get $align) (i32.const 1)))
        (i32.xor (i32.sub (local.get $align) (i32.const 1)) (i32.const -1))))
    (global.set $heap (i32.add (local.get $ptr) (local.get $size)))
    (block $fits
      (br_if $fits
        (i32.le_u (global.get $heap) (i32.mul (memory.size) (i32.const 65536))))
      (if (i32.lt_s
            (memory.grow
              (i32.add
                (i32.shr_u
                  (i32.sub (global.get $heap) (i32.mul (memory.size) (i32.const 65536)))
                  (i32.const 16))
                (i32.const 1)))
            (i32.const 0))
        (then (unreachable))))
    (if (local.get $old)
      (then (memory.copy (local.get $ptr) (local.get $old) (local.get $old_size))))
    (local.get $ptr))

  (func $print (param $ptr i32) (param $len i32)
    (call $write (global.get $out) (local.get $ptr) (local.get $len) (i32.const 48)))

  (func $print_num (param $n i32) (local $p i32)
    (local.set $p (i32.const 532))
    (loop $digit
      (local.set $p (i32.sub (local.get $p) (i32.const 1)))
      (i32.store8 (local.get $p)
        (i32.add (i32.const 48) (i32.rem_u (local.get $n) (i32.const 10))))
      (local.set $n (i32.div_u (local.get $n) (i32.const 10)))
      (br_if $digit (local.get $n)))
    (call $print (local.get $p) (i32.sub (i32.const 532) (local.get $p))))

  (func $print_error (param $code i32)
    (call $print (i32.const 272) (i32.const 6))
    (call $print_num (local.get $code))
    (call $print (i32.const 288) (i32.const 1)))

  (func (export "wasi:cli/run@0.2.12#run") (result i32)
    (local $args i32) (local $n i32) (local $i i32)
    (global.set $out (call $get_stdout))
    (call $get_args (i32.const 64))
    (local.set $args (i32.load (i32.const 64)))
    (local.set $n (i32.load (i32.const 68)))
    (if (i32.lt_u (local.get $n) (i32.const 4))
      (then (call $print (i32.const 300) (i32.const 12)) (return (i32.const 1))))
    ;; argv[2], then argv[4] onwards: one GET per authority (8 bytes per string)
    (call $get_one (local.get $args) (i32.add (local.get $args) (i32.const 16)))
    (local.set $i (i32.const 4))
    (block $end
      (loop $each
        (br_if $end (i32.ge_u (local.get $i) (local.get $n)))
        (call $get_one (local.get $args)
          (i32.add (local.get $args) (i32.shl (local.get $i) (i32.const 3))))
        (local.set $i (i32.add (local.get $i) (i32.const 1)))
        (br $each)))
    (i32.const 0))

  ;; GET SCHEME:// the authority at $authority (pointer, length) PATH
  (func $get_one (param $args i32) (param $authority i32)
    (local $req i32) (local $fut i32) (local $resp i32) (local $stream i32)
    (local.set $req (call $request_new (call $fields_new)))
    ;; option<scheme>: some, HTTPS (1) when argv[1] has 5 bytes, else HTTP (0)
    (drop (call $set_scheme (local.get $req) (i32.const 1)
      (i32.eq (i32.load offset=12 (local.get $args)) (i32.const 5))
      (i32.const 0) (i32.const 0)))
    (drop (call $set_authority (local.get $req) (i32.const 1)
      (i32.load (local.get $authority)) (i32.load offset=4 (local.get $authority))))
    (drop (call $set_path (local.get $req) (i32.const 1)
      (i32.load offset=24 (local.get $args)) (i32.load offset=28 (local.get $args))))
    ;; result<future-incoming-response, error-code>: case at 16, payload at 24
    (call $handle (local.get $req) (i32.const 0) (i32.const 0) (i32.const 16))
    (if (i32.load8_u (i32.const 16))
      (then (call $print_error (i32.load8_u (i32.const 24))) (return)))
    (local.set $fut (i32.load (i32.const 24)))
    (call $block (call $subscribe (local.get $fut)))
    ;; option<result<result<incoming-response, error-code>>>: 16, 24, 32, payload 40
    (call $get (local.get $fut) (i32.const 16))
    (if (i32.eqz (i32.load8_u (i32.const 16))) (then (unreachable)))
    (if (i32.load8_u (i32.const 24)) (then (unreachable)))
    (if (i32.load8_u (i32.const 32))
      (then (call $print_error (i32.load8_u (i32.const 40))) (return)))
    (local.set $resp (i32.load (i32.const 40)))
    (call $print (i32.const 256) (i32.const 7))
    (call $print_num (call $status (local.get $resp)))
    (call $print (i32.const 288) (i32.const 1))
    ;; result<incoming-body>, then result<input-stream>: case at 16, handle at 20
    (call $consume (local.get $resp) (i32.const 16))
    (if (i32.load8_u (i32.const 16)) (then (unreachable)))
    (call $body_stream (i32.load (i32.const 20)) (i32.const 16))
    (if (i32.load8_u (i32.const 16)) (then (unreachable)))
    (local.set $stream (i32.load (i32.const 20)))
    ;; result<list<u8>, stream-error>: case at 16, list at 20/24; an error
    ;; (closed at the end of the body) ends the loop; 4096 bytes at a time,
    ;; the most one blocking-write-and-flush takes
    (block $done
      (loop $more
        (call $read (local.get $stream) (i64.const 4096) (i32.const 16))
        (br_if $done (i32.load8_u (i32.const 16)))
        (call $print (i32.load (i32.const 20)) (i32.load (i32.const 24)))
        (br $more))))
)
