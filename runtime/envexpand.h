/* runtime-private: plugins never include this */
/* ${VAR} templates: finding the variables a string names, and expanding them from the environment. */
#ifndef DR_ENVEXPAND_H
#define DR_ENVEXPAND_H

#include <stddef.h>

/* The syntax: ${NAME} is the value of the environment variable NAME (1-255
 * characters up to the next '}'), $$ is one '$', any other '$' stays as
 * written. */

/* Calls fn(ud, name) for each ${NAME} of s, in order (name is a NUL-terminated
 * copy valid during the call; fn returns nonzero to stop, which is then
 * returned). Returns 0, or -1 with *why set to the syntax error
 * ("unterminated ${ (write $$ for a literal $)", "bad variable name in ${...}"). */
int envexpand_vars(const char *s, int (*fn)(void *ud, const char *name), void *ud, const char **why);

/* Expands s with getenv. Returns a malloc'd string, or NULL: with *why set and
 * unset[] holding the name of the first unset variable ("" when the cause is
 * the syntax or out of memory). Never puts a variable's value in *why or
 * unset. getenv is not safe against a concurrent setenv: call it before
 * threads start, or where nothing sets the environment. */
char *envexpand(const char *s, char *unset, size_t unset_size, const char **why);

/* True when s names at least one ${VAR} (its expansion may hold a secret). */
int envexpand_has_vars(const char *s);

#endif
