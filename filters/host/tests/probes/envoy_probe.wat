;; A hand-written proxy-wasm module that probes the corners of Envoy's ABI behaviour, so the
;; same module can run in real Envoy and in meshguard-wasm-host and the outcomes be compared.
;;
;; on_request_headers:
;;   * request header `x-probe-reply` present -> proxy_send_local_response(418, body
;;     "short and stout", header x-probe: yes) and pause;
;;   * otherwise add request header `x-probe-seen: 1` and continue.
;; on_response_headers:
;;   * adds `x-probe-on-response: 1` (shows whether local replies pass through this filter);
;;   * reads request header `:path` and adds `x-probe-request-map: ok | bad-argument | other`
;;     (shows whether request headers are still readable in the response phase).
(module
  (import "env" "proxy_send_local_response"
    (func $send_local_response (param i32 i32 i32 i32 i32 i32 i32 i32) (result i32)))
  (import "env" "proxy_add_header_map_value"
    (func $add_header (param i32 i32 i32 i32 i32) (result i32)))
  (import "env" "proxy_get_header_map_value"
    (func $get_header (param i32 i32 i32 i32 i32) (result i32)))
  (memory (export "memory") 4)
  (global $heap (mut i32) (i32.const 131072))

  ;; strings
  (data (i32.const 1024) "x-probe-reply")            ;; 13
  (data (i32.const 1056) "short and stout")          ;; 15
  (data (i32.const 1088) "\01\00\00\00\07\00\00\00\03\00\00\00x-probe\00yes\00") ;; 24 bytes of pairs
  (data (i32.const 1152) "x-probe-seen")             ;; 12
  (data (i32.const 1184) "1")                        ;; 1
  (data (i32.const 1216) "x-probe-on-response")      ;; 19
  (data (i32.const 1248) ":path")                    ;; 5
  (data (i32.const 1280) "x-probe-request-map")      ;; 19
  (data (i32.const 1312) "ok")                       ;; 2
  (data (i32.const 1344) "bad-argument")             ;; 12
  (data (i32.const 1376) "other")                    ;; 5

  (func (export "proxy_abi_version_0_2_1"))
  (func (export "proxy_on_memory_allocate") (param $size i32) (result i32)
    (local $at i32)
    (local.set $at (global.get $heap))
    (global.set $heap
      (i32.and (i32.add (i32.add (global.get $heap) (local.get $size)) (i32.const 7))
               (i32.const -8)))
    (local.get $at))
  (func (export "proxy_on_context_create") (param i32 i32))
  (func (export "proxy_on_vm_start") (param i32 i32) (result i32) (i32.const 1))
  (func (export "proxy_on_configure") (param i32 i32) (result i32) (i32.const 1))

  (func (export "proxy_on_request_headers") (param $ctx i32) (param $n i32) (param $eos i32)
    (result i32)
    ;; return pointers live at 64 and 68
    (if (i32.eqz (call $get_header (i32.const 0) (i32.const 1024) (i32.const 13)
                                   (i32.const 64) (i32.const 68)))
      (then
        (drop (call $send_local_response
          (i32.const 418)
          (i32.const 0) (i32.const 0)
          (i32.const 1056) (i32.const 15)
          (i32.const 1088) (i32.const 24)
          (i32.const -1)))
        (return (i32.const 1))))
    (drop (call $add_header (i32.const 0) (i32.const 1152) (i32.const 12)
                            (i32.const 1184) (i32.const 1)))
    (i32.const 0))

  (func (export "proxy_on_response_headers") (param $ctx i32) (param $n i32) (param $eos i32)
    (result i32)
    (local $status i32)
    (drop (call $add_header (i32.const 2) (i32.const 1216) (i32.const 19)
                            (i32.const 1184) (i32.const 1)))
    (local.set $status (call $get_header (i32.const 0) (i32.const 1248) (i32.const 5)
                                         (i32.const 64) (i32.const 68)))
    (if (i32.eqz (local.get $status))
      (then (drop (call $add_header (i32.const 2) (i32.const 1280) (i32.const 19)
                                    (i32.const 1312) (i32.const 2))))
      (else
        (if (i32.eq (local.get $status) (i32.const 2))
          (then (drop (call $add_header (i32.const 2) (i32.const 1280) (i32.const 19)
                                        (i32.const 1344) (i32.const 12))))
          (else (drop (call $add_header (i32.const 2) (i32.const 1280) (i32.const 19)
                                        (i32.const 1376) (i32.const 5)))))))
    (i32.const 0))
)
