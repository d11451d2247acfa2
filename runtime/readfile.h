/* runtime-private: plugins never include this */
/* Reading a whole small file (a DAG, a config, a schema, a zone) with size and FIFO guards. */
#ifndef DR_READFILE_H
#define DR_READFILE_H

#include <stddef.h>
#include "err.h"

/* readfile_load's return when the file is bigger than its cap. */
#define READFILE_TOO_BIG (-2)

/* Reads the regular file at path into a new NUL-terminated buffer (*buf, caller frees;
 * *len bytes before the NUL). Refuses without waiting what is not a regular file (a FIFO,
 * a directory, a device: "path: not a regular file"), and a file that changes size while
 * it is read ("path: file changed while being read"). Returns 0; READFILE_TOO_BIG when
 * the file holds more than max bytes (nothing read; *len is its size, err says
 * "path: file is N bytes, over the limit of M" for callers with nothing better to say);
 * -1 with err ("path: <cause>"). Any thread. */
int readfile_load(const char *path, size_t max, char **buf, size_t *len, struct dr_err *err);

#endif
