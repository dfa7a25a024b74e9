;; A counter canister with raw (non-Candid) replies: the source of counter.wasm, built
;; by this directory's conftest.py.  Written for icp as an equivalent of the prebuilt
;; examples/counter_canister/counter.wasm of dfinity/pocketic-py (same exports: queries
;; `read` and `inc_read`, update `write`, each replying the 32-bit counter as 4 bytes,
;; little-endian; the counter is the exported mutable global `counter_global`).
(module
  (import "ic0" "msg_reply" (func $msg_reply))
  (import "ic0" "msg_reply_data_append" (func $msg_reply_data_append (param i32 i32)))
  (memory (export "memory") 1)
  (global $counter (export "counter_global") (mut i32) (i32.const 0))
  (func $read
    (i32.store (i32.const 0) (global.get $counter))
    (call $msg_reply_data_append (i32.const 0) (i32.const 4))
    (call $msg_reply))
  (func $inc
    (global.set $counter (i32.add (global.get $counter) (i32.const 1))))
  (func $inc_read (call $inc) (call $read))
  (export "canister_query read" (func $read))
  (export "canister_query inc_read" (func $inc_read))
  (export "canister_update write" (func $inc_read)))
