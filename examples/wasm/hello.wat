;; The example module `skrei devstack --example` runs: reads /inputs/name.txt
;; and writes "hello <name>" to stdout and to /outputs/greeting.txt.
;; WASI preview 1; fd 3 is the /inputs preopen, fd 4 the /outputs one.
;; hello.wasm is this file compiled (a test keeps the two in step:
;; SKREI_BLESS=1 cargo test -p node --test it example_module rewrites it).
(module
 (import "wasi_snapshot_preview1" "path_open" (func $path_open (param i32 i32 i32 i32 i32 i64 i64 i32 i32) (result i32)))
 (import "wasi_snapshot_preview1" "fd_read" (func $fd_read (param i32 i32 i32 i32) (result i32)))
 (import "wasi_snapshot_preview1" "fd_write" (func $fd_write (param i32 i32 i32 i32) (result i32)))
 (import "wasi_snapshot_preview1" "proc_exit" (func $exit (param i32)))
 (memory (export "memory") 2)
 ;; Exit with 10 + the WASI error number when a call fails.
 (func $check (param i32) (if (local.get 0) (then (call $exit (i32.add (i32.const 10) (local.get 0))))))
 (data (i32.const 100) "name.txt")
 (data (i32.const 120) "greeting.txt")
 (data (i32.const 200) "hello ")
 (func (export "_start") (local $in i32) (local $out i32) (local $n i32)
   ;; open /inputs/name.txt for reading
   (call $check (call $path_open (i32.const 3) (i32.const 0) (i32.const 100) (i32.const 8)
       (i32.const 0) (i64.const 2) (i64.const 0) (i32.const 0) (i32.const 12)))
   (local.set $in (i32.load (i32.const 12)))
   ;; read up to 1 KiB of it at offset 1024
   (i32.store (i32.const 0) (i32.const 1024))
   (i32.store (i32.const 4) (i32.const 1024))
   (call $check (call $fd_read (local.get $in) (i32.const 0) (i32.const 1) (i32.const 8)))
   (local.set $n (i32.load (i32.const 8)))
   ;; create /outputs/greeting.txt
   (call $check (call $path_open (i32.const 4) (i32.const 0) (i32.const 120) (i32.const 12)
       (i32.const 9) (i64.const 64) (i64.const 0) (i32.const 0) (i32.const 12)))
   (local.set $out (i32.load (i32.const 12)))
   (i32.store (i32.const 16) (i32.const 200))
   (i32.store (i32.const 20) (i32.const 6))
   (i32.store (i32.const 24) (i32.const 1024))
   (i32.store (i32.const 28) (local.get $n))
   ;; One iovec per call: WASI may write only the first of several.
   (call $check (call $fd_write (local.get $out) (i32.const 16) (i32.const 1) (i32.const 8)))
   (call $check (call $fd_write (local.get $out) (i32.const 24) (i32.const 1) (i32.const 8)))
   (call $check (call $fd_write (i32.const 1) (i32.const 16) (i32.const 1) (i32.const 8)))
   (call $check (call $fd_write (i32.const 1) (i32.const 24) (i32.const 1) (i32.const 8))))
)
