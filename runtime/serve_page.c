/* `dagrun serve`: the web page at / (runtime/serve_page.html, compiled into the binary). */
#include <string.h>

#include "serve.h"

/* The page's bytes, placed in .rodata by the assembler from the HTML file (no build step
 * beyond the compiler: the Makefile makes this object depend on the file). */
__asm__(".section .rodata\n"
        ".global serve_page_html\n"
        ".type serve_page_html, @object\n"
        ".balign 16\n"
        "serve_page_html:\n"
        ".incbin \"runtime/serve_page.html\"\n"
        ".byte 0\n"
        ".size serve_page_html, . - serve_page_html\n"
        ".previous\n");
extern const char serve_page_html[];

bool serve_page_route(struct serve_req *r)
{
    if (strcmp(r->url, "/") != 0 && strcmp(r->url, "/index.html") != 0)
        return false;
    if (strcmp(r->method, "GET") != 0 && strcmp(r->method, "HEAD") != 0) {
        serve_reply_error(r, 405, "Method Not Allowed");
        return true;
    }
    serve_reply_text(r, 200, "text/html; charset=utf-8", serve_page_html,
                     strlen(serve_page_html));
    return true;
}
