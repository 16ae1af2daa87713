/*
 * Agent round trips that pause the calling OpenSSL async job instead of blocking its thread
 * (SSL_MODE_ASYNC servers: HAProxy `ssl-mode-async`, `openssl s_server -async`). Outside a job
 * they are akv_agent_call. See agent_async.c for the rules.
 */
#ifndef AKV_AGENT_ASYNC_H
#define AKV_AGENT_ASYNC_H

#include "agent_conn.h"

/* akv_agent_call, except that inside an async job the wait for the answer pauses the job. */
int akv_agent_call_nonblocking(AKV_AGENT *agent, akv_buf *request, akv_response *resp, char *err, size_t errlen);

/* Process-wide counters, for tests and the debug log. */
typedef struct {
    unsigned long calls_in_jobs; /* calls made inside an async job */
    unsigned long pauses;        /* times a job was paused waiting for the agent */
    unsigned long abandoned;     /* paused jobs whose wait context was freed (never resumed) */
    unsigned long wait_fds_open; /* wait fds registered in wait contexts and not yet cleaned up */
} akv_async_stats;
void akv_async_stats_get(akv_async_stats *out);

#endif
