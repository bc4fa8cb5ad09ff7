/* openapi_doc.S - daemon/http/openapi.json, the API's OpenAPI document, embedded
 * as it is in the source (GET /v1/openapi.json serves these bytes).  The
 * Makefile passes its path as OPENAPI_PATH.  A NUL follows the document, so
 * it is a C string too; openapi_doc_end is before the NUL. */
        .section .rodata
        .balign 16
        .globl  openapi_doc
        .type   openapi_doc, @object
openapi_doc:
        .incbin OPENAPI_PATH
        .globl  openapi_doc_end
openapi_doc_end:
        .byte   0
        .section .note.GNU-stack,"",@progbits
