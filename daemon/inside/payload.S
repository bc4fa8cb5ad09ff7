/* payload.S - the static sandbox-probe binary, embedded in the daemon so
 * that it runs in a rootfs of its own whatever the host has (and is the
 * same program under an ASan build).  The Makefile builds it first and
 * passes its path as SANDBOX_PROBE_PATH. */
        .section .rodata
        .balign 16
        .globl  sandbox_probe_payload
        .type   sandbox_probe_payload, @object
sandbox_probe_payload:
        .incbin SANDBOX_PROBE_PATH
        .globl  sandbox_probe_payload_end
sandbox_probe_payload_end:
        .section .note.GNU-stack,"",@progbits
