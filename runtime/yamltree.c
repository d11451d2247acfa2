/* A small positioned YAML tree built from libyaml events, with the limits that make a hostile
 * file cheap to refuse: one document, no anchors or aliases, bounded depth and node count. */
#include "yamltree.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <yaml.h>

/* The parse in progress: where messages point, and how many nodes were made. */
struct yp {
    const char *path;
    struct dr_err *err;
    size_t nodes;
};

int yamltree_verror(struct dr_err *err, const char *path, int line, int col, const char *fmt,
                    va_list ap)
{
    char msg[sizeof err->msg];
    vsnprintf(msg, sizeof msg, fmt, ap);
    err_set(err, "%s:%d:%d: %s", path, line, col, msg);
    if (err) {
        err->line = line;
        err->col = col;
    }
    return -1;
}

int yamltree_error(struct dr_err *err, const char *path, int line, int col, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    yamltree_verror(err, path, line, col, fmt, ap);
    va_end(ap);
    return -1;
}

void yamltree_free(struct ynode *n)
{
    if (!n)
        return;
    for (size_t i = 0; i < n->n; i++)
        yamltree_free(n->kids[i]);
    free(n->kids);
    free(n->text);
    free(n);
}

/* Reports a libyaml parse failure with its position. */
static int parser_error(struct yp *ld, const yaml_parser_t *p, const unsigned char *buf, size_t len)
{
    if (p->error == YAML_MEMORY_ERROR)
        return err_set(ld->err, "%s: out of memory", ld->path);
    if (p->error == YAML_READER_ERROR) {
        /* Reader errors carry a byte offset, not a mark: count lines up to it. */
        size_t off = p->problem_offset < len ? p->problem_offset : len;
        int line = 1, col = 1;
        for (size_t i = 0; i < off; i++) {
            if (buf[i] == '\n') {
                line++;
                col = 1;
            } else {
                col++;
            }
        }
        return yamltree_error(ld->err, ld->path, line, col, "invalid input: %s", p->problem ? p->problem : "unreadable");
    }
    if (p->context)
        return yamltree_error(ld->err, ld->path, (int)p->problem_mark.line + 1, (int)p->problem_mark.column + 1, "bad YAML: %s %s",
                  p->context, p->problem ? p->problem : "");
    return yamltree_error(ld->err, ld->path, (int)p->problem_mark.line + 1, (int)p->problem_mark.column + 1, "bad YAML: %s",
              p->problem ? p->problem : "syntax error");
}

static int add_kid(struct yp *ld, struct ynode *parent, struct ynode *kid)
{
    if (parent->kind == Y_MAP && parent->n % 2 == 0 && kid->kind != Y_SCALAR)
        return yamltree_error(ld->err, ld->path, kid->line, kid->col, "mapping keys must be plain strings");
    if (parent->n == parent->cap) {
        size_t cap = parent->cap ? parent->cap * 2 : 8;
        struct ynode **k = realloc(parent->kids, cap * sizeof *k);
        if (!k)
            return err_set(ld->err, "%s: out of memory", ld->path);
        parent->kids = k;
        parent->cap = cap;
    }
    parent->kids[parent->n++] = kid;
    return 0;
}

int yamltree_parse(const char *path, const unsigned char *buf, size_t len, struct ynode **out,
                   struct dr_err *err)
{
    struct yp yp = { .path = path, .err = err }, *ld = &yp;
    yaml_parser_t p;
    yaml_event_t ev;
    struct ynode *stack[YAMLTREE_MAX_DEPTH];
    int depth = 0, docs = 0;
    struct ynode *root = NULL;
    bool done = false, failed = false;

    if (!yaml_parser_initialize(&p)) {
        *out = NULL;
        return err_set(ld->err, "%s: out of memory", ld->path);
    }
    yaml_parser_set_input_string(&p, buf, len);
    while (!done && !failed) {
        if (!yaml_parser_parse(&p, &ev)) {
            parser_error(ld, &p, buf, len);
            failed = true;
            break;
        }
        int line = (int)ev.start_mark.line + 1, col = (int)ev.start_mark.column + 1;
        struct ynode *n = NULL;
        const yaml_char_t *anchor = NULL;
        switch (ev.type) {
        case YAML_STREAM_END_EVENT:
            done = true;
            break;
        case YAML_DOCUMENT_START_EVENT:
            if (++docs > 1) {
                yamltree_error(ld->err, ld->path, line, col, "more than one YAML document");
                failed = true;
            }
            break;
        case YAML_ALIAS_EVENT:
            yamltree_error(ld->err, ld->path, line, col, "aliases and anchors are not allowed");
            failed = true;
            break;
        case YAML_SCALAR_EVENT:
        case YAML_SEQUENCE_START_EVENT:
        case YAML_MAPPING_START_EVENT:
            anchor = ev.type == YAML_SCALAR_EVENT ? ev.data.scalar.anchor
                   : ev.type == YAML_SEQUENCE_START_EVENT ? ev.data.sequence_start.anchor
                   : ev.data.mapping_start.anchor;
            if (anchor) {
                yamltree_error(ld->err, ld->path, line, col, "aliases and anchors are not allowed");
                failed = true;
                break;
            }
            if (++ld->nodes > YAMLTREE_MAX_NODES) {
                yamltree_error(ld->err, ld->path, line, col, "more than %d YAML nodes", YAMLTREE_MAX_NODES);
                failed = true;
                break;
            }
            if (ev.type != YAML_SCALAR_EVENT && depth >= YAMLTREE_MAX_DEPTH) {
                yamltree_error(ld->err, ld->path, line, col, "nesting deeper than %d levels", YAMLTREE_MAX_DEPTH);
                failed = true;
                break;
            }
            if (!(n = calloc(1, sizeof *n))) {
                err_set(ld->err, "%s: out of memory", ld->path);
                failed = true;
                break;
            }
            n->line = line;
            n->col = col;
            n->end_line = (int)ev.end_mark.line + 1;
            if (ev.type == YAML_SCALAR_EVENT) {
                n->kind = Y_SCALAR;
                size_t slen = ev.data.scalar.length;
                n->text = strndup((const char *)ev.data.scalar.value, slen);
                n->plain = ev.data.scalar.style == YAML_PLAIN_SCALAR_STYLE;
                n->quoted = ev.data.scalar.style == YAML_SINGLE_QUOTED_SCALAR_STYLE ||
                            ev.data.scalar.style == YAML_DOUBLE_QUOTED_SCALAR_STYLE;
                if (!n->text) {
                    err_set(ld->err, "%s: out of memory", ld->path);
                    failed = true;
                } else if (strlen(n->text) != slen) {
                    yamltree_error(ld->err, ld->path, line, col, "NUL character in a string");
                    failed = true;
                }
            } else {
                n->kind = ev.type == YAML_SEQUENCE_START_EVENT ? Y_SEQ : Y_MAP;
            }
            if (!failed) {
                if (depth == 0)
                    root = n;
                else if (add_kid(ld, stack[depth - 1], n) < 0)
                    failed = true;
            }
            if (failed) {
                if (n != root)
                    yamltree_free(n);
                break;
            }
            if (n->kind != Y_SCALAR)
                stack[depth++] = n;
            break;
        case YAML_SEQUENCE_END_EVENT:
        case YAML_MAPPING_END_EVENT:
            if (depth > 0)
                depth--;
            break;
        default:
            break;
        }
        yaml_event_delete(&ev);
    }
    yaml_parser_delete(&p);
    if (failed) {
        yamltree_free(root);
        root = NULL;
    }
    *out = root;
    return failed ? -1 : 0;
}

bool yamltree_is_null(const struct ynode *n)
{
    return n->kind == Y_SCALAR && n->plain &&
           (!n->text[0] || strcmp(n->text, "~") == 0 || strcmp(n->text, "null") == 0 ||
            strcmp(n->text, "Null") == 0 || strcmp(n->text, "NULL") == 0);
}

const char *yamltree_kind_name(const struct ynode *n)
{
    return yamltree_is_null(n) ? "null" : n->kind == Y_SEQ ? "a list" : n->kind == Y_MAP ? "a mapping" : "a string";
}

