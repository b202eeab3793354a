/* An LD_PRELOAD library that makes an OpenSSL (1.1.1 or 3.x) client or server write the TLS
 * secrets of its connections, in the NSS key log format (one `LABEL <client random> <secret>`
 * line each, e.g. CLIENT_TRAFFIC_SECRET_0), to the file named by the environment variable
 * SSLKEYLOGFILE. wrk and nginx cannot write a key log themselves; OpenSSL only reads
 * SSLKEYLOGFILE from 3.5, and only when built with enable-sslkeylog.
 *
 *   cc -shared -fPIC -O2 -o sslkeylog.so scripts/sslkeylog.c -ldl
 *   LD_PRELOAD=$PWD/sslkeylog.so SSLKEYLOGFILE=keys.txt wrk https://...
 *
 * SSL_new is interposed: each new connection sets the callback on its context (OpenSSL reads
 * it from the context when a secret is derived), whichever way the context was made. Lines are
 * appended with one write() each under a mutex, so threads never interleave them. Used by
 * scripts/record-bench-captures.sh. */
#define _GNU_SOURCE
#include <dlfcn.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <openssl/ssl.h>

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static int fd = -1;

static void keylog_line(const SSL *ssl, const char *line) {
    (void)ssl;
    size_t n = strlen(line);
    char *buf = malloc(n + 1);
    if (!buf) return;
    memcpy(buf, line, n);
    buf[n] = '\n';
    pthread_mutex_lock(&lock);
    if (fd < 0) {
        const char *path = getenv("SSLKEYLOGFILE");
        if (path && *path) fd = open(path, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0644);
    }
    if (fd >= 0) {
        ssize_t w = write(fd, buf, n + 1);
        (void)w;
    }
    pthread_mutex_unlock(&lock);
    free(buf);
}

SSL *SSL_new(SSL_CTX *ctx) {
    static SSL *(*real)(SSL_CTX *);
    if (!real) real = (SSL *(*)(SSL_CTX *))dlsym(RTLD_NEXT, "SSL_new");
    if (!real) return NULL;
    if (ctx) SSL_CTX_set_keylog_callback(ctx, keylog_line);
    return real(ctx);
}
