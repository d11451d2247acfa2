/* runtime-private: plugins never include this */
/* A small positioned YAML tree (scalars, sequences, mappings) with the limits of a DAG file. */
#ifndef DR_YAMLTREE_H
#define DR_YAMLTREE_H

#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include "err.h"

#define YAMLTREE_MAX_DEPTH 32
#define YAMLTREE_MAX_NODES 100000   /* bounds the tree built from 1 MiB of "[a,a,a,..." */

enum ykind { Y_SCALAR, Y_SEQ, Y_MAP };

struct ynode {
    enum ykind kind;
    char *text;                 /* scalars: the value */
    bool plain, quoted;         /* scalar style */
    int line, col, end_line;    /* 1-based */
    struct ynode **kids;        /* seq: items; map: key, value, key, value, ... */
    size_t n, cap;
};

/* Builds the tree of the one document in buf[0..len). Refuses several documents, anchors
 * and aliases, nesting deeper than YAMLTREE_MAX_DEPTH, more than YAMLTREE_MAX_NODES nodes,
 * NUL in a string, non-scalar mapping keys and libyaml's errors (invalid UTF-8 included).
 * Returns 0 with *out the root (NULL for an empty file; yamltree_free), or -1 with err
 * "path:line:col: message" (also in err->line/col). Any thread. */
int yamltree_parse(const char *path, const unsigned char *buf, size_t len, struct ynode **out,
                   struct dr_err *err);
void yamltree_free(struct ynode *n);

/* A plain empty, ~ or null scalar. */
bool yamltree_is_null(const struct ynode *n);
/* "null", "a list", "a mapping" or "a string", for messages. */
const char *yamltree_kind_name(const struct ynode *n);

/* Sets err to "path:line:col: <fmt...>" and err->line/col (err may be NULL); returns -1. */
int yamltree_error(struct dr_err *err, const char *path, int line, int col, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));
int yamltree_verror(struct dr_err *err, const char *path, int line, int col, const char *fmt,
                    va_list ap) __attribute__((format(printf, 5, 0)));

#endif
