/* payload.S - the static binaries that run inside containers, embedded in
 * the daemon so that they run whatever the host has (and are the same
 * programs under an ASan build): the sandbox probe (in a rootfs of its
 * own) and the warm containers' gate.  The Makefile builds them first and
 * passes their paths as SANDBOX_PROBE_PATH and WARM_GATE_PATH. */
        .section .rodata
        .balign 16
        .globl  sandbox_probe_payload
        .type   sandbox_probe_payload, @object
sandbox_probe_payload:
        .incbin SANDBOX_PROBE_PATH
        .globl  sandbox_probe_payload_end
sandbox_probe_payload_end:
        .balign 16
        .globl  warm_gate_payload
        .type   warm_gate_payload, @object
warm_gate_payload:
        .incbin WARM_GATE_PATH
        .globl  warm_gate_payload_end
warm_gate_payload_end:
        .section .note.GNU-stack,"",@progbits
