/* Test simulators' shared HTTP plumbing: a loopback libmicrohttpd server, answers, query arguments. */
#ifndef SIM_SIMSRV_H
#define SIM_SIMSRV_H

#include <microhttpd.h>
#include <stdbool.h>
#include <stdint.h>

#include "sbuf.h"

/* Queues body (taken) with status and Content-Type; hdrs is NULL or a
 * NULL-terminated list of name, value pairs. */
enum MHD_Result simsrv_send(struct MHD_Connection *c, unsigned status, const char *ctype,
                            struct sbuf *body, const char *const *hdrs);
/* The query argument name, or NULL. */
const char *simsrv_arg(struct MHD_Connection *c, const char *name);
/* Parses a whole decimal integer; false when s is NULL, empty or not one. */
bool simsrv_i64(const char *s, int64_t *out);
/* Parses "YYYY-MM-DD" into days since 1970; -1 when malformed. */
int simsrv_day(const char *s, int64_t *day);
/* Wall-clock milliseconds. */
int64_t simsrv_wall_ms(void);
/* Fault injection: the fault (index into fault_at, n of them) set to fire at request number
 * nreq, or -1 for none; the last one wins when several are. */
long simsrv_fault_at(const long *fault_at, int n, long nreq);
/* The handler sees only whole GET requests (the first call and any upload
 * are taken care of). */
typedef enum MHD_Result (*simsrv_handler)(struct MHD_Connection *c, const char *url,
                                           const char *method);
/* Serves handler on 127.0.0.1:port (0: any free port), writes the bound port
 * to port_file (may be NULL), logs "NAME: listening on ..." and returns at
 * SIGINT or SIGTERM. Returns 0, or 1 when it could not listen. */
int simsrv_run(const char *name, long port, const char *port_file, simsrv_handler handler);

#endif
