/*
 * The C ABI of Karma (ffi/include/karma.h) exercised from C, as a C user
 * would: an engine in a data directory (writes, reads, execute, errors,
 * durability across a reopen), an in-memory engine, threads sharing a
 * handle, a client against a running `karma` server, and every method of
 * the API surface through both (karma_surface.inc).
 *
 * Run by tests/c/run.sh under valgrind. Environment:
 *   KARMA_TEST_DIR  an empty directory for the engine's data (required)
 *   KARMA_TEST_URL  karma://127.0.0.1:<port> of a running server (required)
 *
 * Prints one line per failed check and ends with `c-abi: N passed, M failed`;
 * exits 1 if any check failed.
 */
#define _POSIX_C_SOURCE 200809L

#include <arpa/inet.h>
#include <netinet/in.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "karma.h"

static int passed = 0;
static int failed = 0;

#define CHECK(cond)                                                                    \
    do {                                                                               \
        if (cond) {                                                                    \
            passed++;                                                                  \
        } else {                                                                       \
            failed++;                                                                  \
            const char *err_ = karma_last_error();                                     \
            fprintf(stderr, "FAIL %s:%d: %s (last error: %s)\n", __FILE__, __LINE__,  \
                    #cond, err_ ? err_ : "none");                                      \
        }                                                                              \
    } while (0)

/* A status check that names both statuses when it fails. */
#define CHECK_STATUS(call, want)                                                       \
    do {                                                                               \
        KarmaStatus got_ = (call);                                                     \
        if (got_ == (want)) {                                                          \
            passed++;                                                                  \
        } else {                                                                       \
            failed++;                                                                  \
            const char *err_ = karma_last_error();                                     \
            fprintf(stderr, "FAIL %s:%d: %s gave %s, want %s (last error: %s)\n",      \
                    __FILE__, __LINE__, #call, karma_status_name((int)got_),           \
                    karma_status_name((int)(want)), err_ ? err_ : "none");             \
        }                                                                              \
    } while (0)

static int starts_with(const char *s, const char *prefix) {
    return s != NULL && strncmp(s, prefix, strlen(prefix)) == 0;
}

static int contains(const char *s, const char *needle) {
    return s != NULL && strstr(s, needle) != NULL;
}

/* Today's bucket, YYYYMMDD in UTC, as the library computes "bucket 0". */
static uint64_t today_bucket(void) {
    time_t now = time(NULL);
    struct tm tm;
    gmtime_r(&now, &tm);
    return (uint64_t)(tm.tm_year + 1900) * 10000u + (uint64_t)(tm.tm_mon + 1) * 100u + (uint64_t)tm.tm_mday;
}

static KarmaStatus engine_exec(KarmaEngine *engine, const char *json, char **response) {
    return karma_engine_execute(engine, json, strlen(json), response);
}

static KarmaStatus client_exec(KarmaClient *client, const char *json, char **response) {
    return karma_client_execute(client, json, strlen(json), response);
}

/* ------------------------------------------------------------------ basics */

static void test_basics(void) {
    const char *version = karma_version();
    CHECK(version != NULL && strlen(version) > 0);
    CHECK(strcmp(karma_status_name(KARMA_OK), "ok") == 0);
    CHECK(strcmp(karma_status_name(KARMA_VALIDATION_ERROR), "validation_error") == 0);
    CHECK(strcmp(karma_status_name(KARMA_CONNECTION_ERROR), "connection_error") == 0);
    CHECK(strcmp(karma_status_name(999), "unknown") == 0);
    CHECK(KARMA_OK == 0 && KARMA_INVALID_JSON == 1 && KARMA_INTERNAL_ERROR == 14);

    /* Every destroy function accepts NULL. */
    karma_engine_free(NULL);
    karma_client_free(NULL);
    karma_string_free(NULL);
    passed++;
}

/* ------------------------------------------------------------------ engine */

static void test_engine_open_errors(const char *dir) {
    KarmaEngine *engine = NULL;
    CHECK_STATUS(karma_engine_open(dir, NULL, NULL), KARMA_INVALID_ARGUMENT);
    CHECK(contains(karma_last_error(), "out"));
    CHECK_STATUS(karma_engine_open(dir, "{not json", &engine), KARMA_INVALID_ARGUMENT);
    CHECK(engine == NULL);
    CHECK_STATUS(karma_engine_open(dir, "{\"wal_fsinc\":true}", &engine), KARMA_INVALID_ARGUMENT);
    CHECK(contains(karma_last_error(), "wal_fsinc"));
    CHECK(engine == NULL);
}

static void test_engine(const char *dir) {
    KarmaEngine *engine = NULL;
    uint64_t out = 0;
    const uint64_t today = today_bucket();

    CHECK_STATUS(karma_engine_open(dir, "{\"wal_fsync\":true,\"max_request_bytes\":4096}", &engine), KARMA_OK);
    CHECK(engine != NULL);
    CHECK(karma_last_error() == NULL);
    if (engine == NULL) {
        return;
    }

    /* Increments: explicit buckets and bucket 0 = today. */
    CHECK_STATUS(karma_engine_increment(engine, "api", 7, 20260301, 5, &out), KARMA_OK);
    CHECK(out == 5);
    CHECK_STATUS(karma_engine_increment(engine, "api", 7, 20260302, 3, &out), KARMA_OK);
    CHECK_STATUS(karma_engine_increment(engine, "api", 7, 0, 2, &out), KARMA_OK);
    CHECK_STATUS(karma_engine_increment(engine, "api", 8, 20260301, UINT64_MAX - 1, &out), KARMA_OK);
    CHECK(out == UINT64_MAX - 1);

    /* Sums: total, one day, today, a missing key, a missing series. */
    CHECK_STATUS(karma_engine_sum(engine, "api", 7, NULL, &out), KARMA_OK);
    CHECK(out == 10);
    KarmaRange first_day = {20260301, 20260301};
    CHECK_STATUS(karma_engine_sum(engine, "api", 7, &first_day, &out), KARMA_OK);
    CHECK(out == 5);
    KarmaRange today_range = {today, today};
    CHECK_STATUS(karma_engine_sum(engine, "api", 7, &today_range, &out), KARMA_OK);
    CHECK(out == 2);
    CHECK_STATUS(karma_engine_sum(engine, "api", 8, NULL, &out), KARMA_OK);
    CHECK(out == UINT64_MAX - 1);
    CHECK_STATUS(karma_engine_sum(engine, "api", 99, NULL, &out), KARMA_OK);
    CHECK(out == 0);
    out = 12345;
    CHECK_STATUS(karma_engine_sum(engine, "nope", 7, NULL, &out), KARMA_NOT_FOUND);
    CHECK(contains(karma_last_error(), "nope"));
    CHECK(out == 12345); /* untouched on failure */

    /* Decrement never goes below zero. */
    CHECK_STATUS(karma_engine_decrement(engine, "api", 7, 20260302, 100, &out), KARMA_OK);
    CHECK_STATUS(karma_engine_sum(engine, "api", 7, NULL, &out), KARMA_OK);
    CHECK(out == 7);

    /* consume: the quota check and the increment it guards, in one step; a
     * refusal is KARMA_OK with allowed == 0 and changes nothing. */
    KarmaQuota q;
    memset(&q, 0, sizeof q);
    CHECK_STATUS(karma_engine_consume(engine, "quota", 1, 20260301, 2, 3, "month", 0, &q), KARMA_OK);
    CHECK(q.allowed == 1 && q.used == 2 && q.remaining == 1 && q.limit == 3);
    CHECK(q.range_from == 20260301 && q.range_to == 20260301);
    CHECK_STATUS(karma_engine_consume(engine, "quota", 1, 20260305, 2, 3, "month", 0, &q), KARMA_OK);
    CHECK(q.allowed == 0 && q.used == 2 && q.remaining == 1 && q.range_from == 20260301 && q.range_to == 20260305);
    CHECK_STATUS(karma_engine_consume(engine, "quota", 1, 20260302, 1, 3, NULL, 2, &q), KARMA_OK);
    CHECK(q.allowed == 1 && q.used == 3 && q.remaining == 0 && q.range_from == 20260301);
    CHECK_STATUS(karma_engine_consume(engine, "quota", 1, 20260302, 1, 3, "fortnight", 0, &q), KARMA_INVALID_ARGUMENT);
    CHECK(contains(karma_last_error(), "fortnight"));
    CHECK_STATUS(karma_engine_sum(engine, "quota", 1, NULL, &out), KARMA_OK);
    CHECK(out == 3);

    /* Overflow is refused with a validation error and leaves the counter alone. */
    CHECK_STATUS(karma_engine_increment(engine, "api", 8, 20260301, 2, &out), KARMA_VALIDATION_ERROR);
    CHECK(karma_last_error() != NULL);

    /* batch_add, atomically, with one item on today. */
    KarmaItem items[] = {{1, 20260301, 10}, {2, 20260302, 20}, {1, 0, 1}};
    CHECK_STATUS(karma_engine_batch_add(engine, "api", items, 3, &out), KARMA_OK);
    CHECK(out == 31);

    /* batch_sum into a caller-owned array. */
    uint64_t keys[] = {1, 2, 3, 7};
    uint64_t values[4] = {0};
    CHECK_STATUS(karma_engine_batch_sum(engine, "api", keys, 4, NULL, values), KARMA_OK);
    CHECK(values[0] == 11 && values[1] == 20 && values[2] == 0 && values[3] == 7);
    CHECK_STATUS(karma_engine_batch_sum(engine, "api", keys, 4, &first_day, values), KARMA_OK);
    CHECK(values[0] == 10 && values[1] == 0 && values[2] == 0 && values[3] == 5);
    CHECK_STATUS(karma_engine_batch_sum(engine, "api", keys, 4, &today_range, values), KARMA_OK);
    CHECK(values[0] == 1 && values[3] == 2);

    /* A validation error on the typed path: a reversed range. */
    KarmaRange reversed = {20260302, 20260301};
    CHECK_STATUS(karma_engine_sum(engine, "api", 7, &reversed, &out), KARMA_VALIDATION_ERROR);
    const char *msg = karma_last_error();
    CHECK(msg != NULL && strlen(msg) > 0);
    size_t need = karma_last_error_copy(NULL, 0);
    CHECK(msg != NULL && need == strlen(msg));
    char small[8];
    CHECK(karma_last_error_copy(small, sizeof small) == need);
    CHECK(strlen(small) == sizeof small - 1 && msg != NULL && strncmp(small, msg, sizeof small - 1) == 0);
    /* ... and a success clears it. */
    CHECK_STATUS(karma_engine_sum(engine, "api", 7, NULL, &out), KARMA_OK);
    CHECK(karma_last_error() == NULL);
    CHECK(karma_last_error_copy(small, sizeof small) == 0 && small[0] == '\0');

    /* NULL arguments. */
    CHECK_STATUS(karma_engine_increment(NULL, "api", 1, 0, 1, &out), KARMA_INVALID_ARGUMENT);
    CHECK(contains(karma_last_error(), "engine"));
    CHECK_STATUS(karma_engine_increment(engine, NULL, 1, 0, 1, &out), KARMA_INVALID_ARGUMENT);
    CHECK(contains(karma_last_error(), "series"));
    CHECK_STATUS(karma_engine_increment(engine, "api", 1, 0, 1, NULL), KARMA_INVALID_ARGUMENT);
    CHECK_STATUS(karma_engine_sum(engine, "api", 1, NULL, NULL), KARMA_INVALID_ARGUMENT);
    CHECK_STATUS(karma_engine_batch_sum(engine, "api", NULL, 4, NULL, values), KARMA_INVALID_ARGUMENT);
    CHECK_STATUS(karma_engine_batch_sum(engine, "api", keys, 4, NULL, NULL), KARMA_INVALID_ARGUMENT);
    CHECK_STATUS(karma_engine_batch_add(engine, "api", NULL, 3, &out), KARMA_INVALID_ARGUMENT);
    CHECK_STATUS(karma_engine_snapshot_all(NULL), KARMA_INVALID_ARGUMENT);
    const char bad_utf8[] = {'a', (char)0xff, '\0'};
    CHECK_STATUS(karma_engine_increment(engine, bad_utf8, 1, 0, 1, &out), KARMA_INVALID_ARGUMENT);
    CHECK(contains(karma_last_error(), "UTF-8"));
    /* The refused writes did nothing. */
    CHECK_STATUS(karma_engine_sum(engine, "api", 1, NULL, &out), KARMA_OK);
    CHECK(out == 11);

    /* execute: a valid request gives the whole response line. */
    char *response = (char *)0x1;
    CHECK_STATUS(engine_exec(engine, "{\"v\":2,\"op\":\"counter.sum\",\"series\":\"api\",\"key\":7}", &response),
                 KARMA_OK);
    CHECK(starts_with(response, "{\"protocol_version\":2,\"success\":true,\"response\":7"));
    CHECK(response != NULL && strchr(response, '\r') == NULL && strchr(response, '\n') == NULL);
    karma_string_free(response);
    /* A write through execute, with a trailing newline; no NUL needed after len. */
    const char write_req[] = "{\"v\":2,\"op\":\"counter.increment\",\"series\":\"api\",\"key\":7,\"bucket\":20260303,"
                             "\"value\":3}\nTRAILING GARBAGE";
    size_t write_len = (size_t)(strstr(write_req, "\n") - write_req) + 1;
    CHECK_STATUS(karma_engine_execute(engine, write_req, write_len, &response), KARMA_OK);
    CHECK(contains(response, "\"success\":true"));
    karma_string_free(response);
    CHECK_STATUS(karma_engine_sum(engine, "api", 7, NULL, &out), KARMA_OK);
    CHECK(out == 10);

    /* execute: an invalid request gives the error envelope and its status. */
    response = NULL;
    CHECK_STATUS(engine_exec(engine, "{\"v\":2,\"op\":\"counter.increment\",\"series\":\"api\"}", &response),
                 KARMA_VALIDATION_ERROR);
    CHECK(contains(response, "\"success\":false"));
    CHECK(contains(response, "\"error_code\":\"validation_error\""));
    CHECK(karma_last_error() != NULL && contains(response, karma_last_error()));
    karma_string_free(response);
    CHECK_STATUS(engine_exec(engine, "this is not json", &response), KARMA_INVALID_JSON);
    CHECK(contains(response, "invalid_json"));
    karma_string_free(response);
    CHECK_STATUS(engine_exec(engine, "{\"v\":2,\"op\":\"counter.explode\"}", &response), KARMA_UNKNOWN_COMMAND);
    karma_string_free(response);
    CHECK_STATUS(engine_exec(engine, "{\"v\":2,\"op\":\"counter.sum\",\"series\":\"gone\",\"key\":1}", &response),
                 KARMA_NOT_FOUND);
    karma_string_free(response);
    response = (char *)0x1;
    CHECK_STATUS(karma_engine_execute(engine, NULL, 10, &response), KARMA_INVALID_ARGUMENT);
    CHECK(response == NULL);

    /* The directory is locked while the engine is open. */
    KarmaEngine *second = NULL;
    CHECK_STATUS(karma_engine_open(dir, NULL, &second), KARMA_VALIDATION_ERROR);
    CHECK(second == NULL && contains(karma_last_error(), "locked"));
    karma_engine_free(second);

    /* A snapshot, then one more write that only the WAL has. */
    CHECK_STATUS(karma_engine_snapshot_all(engine), KARMA_OK);
    CHECK_STATUS(karma_engine_increment(engine, "wal_only", 1, 20260101, 42, &out), KARMA_OK);

    karma_engine_free(engine);
}

static void test_engine_durability(const char *dir) {
    KarmaEngine *engine = NULL;
    uint64_t out = 0;
    CHECK_STATUS(karma_engine_open(dir, NULL, &engine), KARMA_OK);
    if (engine == NULL) {
        return;
    }
    CHECK_STATUS(karma_engine_sum(engine, "api", 7, NULL, &out), KARMA_OK);
    CHECK(out == 10);
    CHECK_STATUS(karma_engine_sum(engine, "api", 1, NULL, &out), KARMA_OK);
    CHECK(out == 11);
    CHECK_STATUS(karma_engine_sum(engine, "api", 8, NULL, &out), KARMA_OK);
    CHECK(out == UINT64_MAX - 1);
    CHECK_STATUS(karma_engine_sum(engine, "wal_only", 1, NULL, &out), KARMA_OK);
    CHECK(out == 42);
    karma_engine_free(engine);
}

static void test_memory_engine(void) {
    KarmaEngine *engine = NULL;
    uint64_t out = 0;
    CHECK_STATUS(karma_engine_open(NULL, NULL, &engine), KARMA_OK);
    if (engine == NULL) {
        return;
    }
    CHECK_STATUS(karma_engine_increment(engine, "m", 1, 20260101, 1, &out), KARMA_OK);
    /* Nowhere to snapshot to. */
    CHECK_STATUS(karma_engine_snapshot_all(engine), KARMA_VALIDATION_ERROR);
    CHECK(contains(karma_last_error(), "no data directory"));
    karma_engine_free(engine);
}

/* ------------------------------------------------------------------ threads */

#define THREADS 4
#define PER_THREAD 50

struct worker {
    KarmaEngine *engine;
    int failures;
};

static void *worker_main(void *arg) {
    struct worker *w = arg;
    uint64_t out;
    for (int i = 0; i < PER_THREAD; i++) {
        if (karma_engine_increment(w->engine, "threads", 1, 20260101, 1, &out) != KARMA_OK) {
            w->failures++;
        }
    }
    /* The last error is per thread: this thread's own failure. */
    if (karma_engine_sum(w->engine, "no_such_series", 1, NULL, &out) != KARMA_NOT_FOUND ||
        !contains(karma_last_error(), "no_such_series")) {
        w->failures++;
    }
    return NULL;
}

static void test_threads(void) {
    KarmaEngine *engine = NULL;
    uint64_t out = 0;
    CHECK_STATUS(karma_engine_open(NULL, NULL, &engine), KARMA_OK);
    if (engine == NULL) {
        return;
    }
    CHECK_STATUS(karma_engine_sum(engine, "x", 1, NULL, &out), KARMA_NOT_FOUND);
    pthread_t threads[THREADS];
    struct worker workers[THREADS];
    for (int i = 0; i < THREADS; i++) {
        workers[i].engine = engine;
        workers[i].failures = 0;
        CHECK(pthread_create(&threads[i], NULL, worker_main, &workers[i]) == 0);
    }
    for (int i = 0; i < THREADS; i++) {
        pthread_join(threads[i], NULL);
        CHECK(workers[i].failures == 0);
    }
    /* This thread's last error is still its own. */
    CHECK(contains(karma_last_error(), "\"x\""));
    CHECK_STATUS(karma_engine_sum(engine, "threads", 1, NULL, &out), KARMA_OK);
    CHECK(out == THREADS * PER_THREAD);
    karma_engine_free(engine);
}

/* ------------------------------------------------------------------ client */

static void test_client(const char *url) {
    KarmaClient *client = NULL;
    uint64_t out = 0;
    char *response = NULL;

    CHECK_STATUS(karma_client_open(url, &client), KARMA_OK);
    if (client == NULL) {
        return;
    }
    CHECK_STATUS(karma_client_increment(client, "net", 1, 20260101, 5, &out), KARMA_OK);
    CHECK(out == 5);
    CHECK_STATUS(karma_client_increment(client, "net", 1, 0, 1, &out), KARMA_OK);
    CHECK_STATUS(karma_client_decrement(client, "net", 1, 20260101, 2, &out), KARMA_OK);
    CHECK_STATUS(karma_client_sum(client, "net", 1, NULL, &out), KARMA_OK);
    CHECK(out == 4);
    KarmaRange day = {20260101, 20260101};
    CHECK_STATUS(karma_client_sum(client, "net", 1, &day, &out), KARMA_OK);
    CHECK(out == 3);

    KarmaItem items[] = {{2, 20260101, 7}, {3, 20260102, 8}, {2, 0, 1}};
    CHECK_STATUS(karma_client_batch_add(client, "net", items, 3, &out), KARMA_OK);
    CHECK(out == 16);
    uint64_t keys[] = {1, 2, 3, 4};
    uint64_t values[4] = {0};
    CHECK_STATUS(karma_client_batch_sum(client, "net", keys, 4, NULL, values), KARMA_OK);
    CHECK(values[0] == 4 && values[1] == 8 && values[2] == 8 && values[3] == 0);
    CHECK_STATUS(karma_client_batch_sum(client, "net", keys, 4, &day, values), KARMA_OK);
    CHECK(values[0] == 3 && values[1] == 7 && values[2] == 0 && values[3] == 0);

    CHECK_STATUS(karma_client_sum(client, "missing", 1, NULL, &out), KARMA_NOT_FOUND);
    CHECK(contains(karma_last_error(), "missing"));
    KarmaRange reversed = {20260102, 20260101};
    CHECK_STATUS(karma_client_sum(client, "net", 1, &reversed, &out), KARMA_VALIDATION_ERROR);
    CHECK(karma_last_error() != NULL);

    CHECK_STATUS(client_exec(client, "{\"v\":2,\"op\":\"counter.sum\",\"series\":\"net\",\"key\":2}", &response),
                 KARMA_OK);
    CHECK(contains(response, "\"success\":true") && contains(response, "\"response\":8"));
    karma_string_free(response);
    CHECK_STATUS(client_exec(client, "{\"v\":2,\"op\":\"counter.increment\"}", &response), KARMA_VALIDATION_ERROR);
    CHECK(contains(response, "\"success\":false") && contains(response, "validation_error"));
    karma_string_free(response);
    CHECK_STATUS(client_exec(client, "nonsense", &response), KARMA_INVALID_JSON);
    karma_string_free(response);

    CHECK_STATUS(karma_client_increment(client, NULL, 1, 0, 1, &out), KARMA_INVALID_ARGUMENT);
    CHECK_STATUS(karma_client_sum(NULL, "net", 1, NULL, &out), KARMA_INVALID_ARGUMENT);
    karma_client_free(client);

    /* NULL URL: from the environment. */
    client = NULL;
    CHECK(setenv("KARMA_URL", url, 1) == 0);
    CHECK_STATUS(karma_client_open(NULL, &client), KARMA_OK);
    CHECK_STATUS(karma_client_sum(client, "net", 1, NULL, &out), KARMA_OK);
    CHECK(out == 4);
    karma_client_free(client);
    unsetenv("KARMA_URL");

    /* A bad URL. */
    client = NULL;
    CHECK_STATUS(karma_client_open("http://example.com", &client), KARMA_VALIDATION_ERROR);
    CHECK(client == NULL && contains(karma_last_error(), "Invalid Karma URL"));
}

/* ------------------------------------------------------------------ surface */

/* Every method of the surface, once through each handle type. */
#define K(m) karma_engine_##m
#define HANDLE KarmaEngine
#define SURFACE_TEST surface_through_engine
#include "karma_surface.inc"
#undef K
#undef HANDLE
#undef SURFACE_TEST

#define K(m) karma_client_##m
#define HANDLE KarmaClient
#define SURFACE_TEST surface_through_client
#include "karma_surface.inc"
#undef K
#undef HANDLE
#undef SURFACE_TEST

static void test_surface_engine(const char *dir) {
    KarmaEngine *engine = NULL;
    CHECK_STATUS(karma_engine_open(dir, NULL, &engine), KARMA_OK);
    if (engine == NULL) {
        return;
    }
    surface_through_engine(engine);
    karma_engine_free(engine);
}

static void test_surface_client(const char *url) {
    KarmaClient *client = NULL;
    CHECK_STATUS(karma_client_open(url, &client), KARMA_OK);
    if (client == NULL) {
        return;
    }
    surface_through_client(client);
    karma_client_free(client);
}

/* A port nothing listens on: bind an ephemeral one, then close it. */
static int closed_port(void) {
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0) {
        return -1;
    }
    struct sockaddr_in addr;
    memset(&addr, 0, sizeof addr);
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    addr.sin_port = 0;
    socklen_t len = sizeof addr;
    int port = -1;
    if (bind(fd, (struct sockaddr *)&addr, sizeof addr) == 0 && getsockname(fd, (struct sockaddr *)&addr, &len) == 0) {
        port = ntohs(addr.sin_port);
    }
    close(fd);
    return port;
}

static void test_client_connection_error(void) {
    int port = closed_port();
    CHECK(port > 0);
    char url[128];
    snprintf(url, sizeof url, "karma://127.0.0.1:%d?connect_timeout=2", port);
    KarmaClient *client = NULL;
    uint64_t out = 77;
    CHECK_STATUS(karma_client_open(url, &client), KARMA_OK); /* lazy: nothing connected yet */
    if (client == NULL) {
        return;
    }
    CHECK_STATUS(karma_client_increment(client, "s", 1, 0, 1, &out), KARMA_CONNECTION_ERROR);
    CHECK(out == 77 && karma_last_error() != NULL);
    CHECK_STATUS(karma_client_sum(client, "s", 1, NULL, &out), KARMA_CONNECTION_ERROR);
    char *response = (char *)0x1;
    CHECK_STATUS(client_exec(client, "{\"v\":2,\"op\":\"system.ping\"}", &response), KARMA_CONNECTION_ERROR);
    CHECK(response == NULL);
    karma_client_free(client);
}

int main(void) {
    const char *dir = getenv("KARMA_TEST_DIR");
    const char *url = getenv("KARMA_TEST_URL");
    if (dir == NULL || url == NULL) {
        fprintf(stderr, "karma_test: set KARMA_TEST_DIR (an empty directory) and KARMA_TEST_URL (karma://host:port)\n");
        printf("c-abi: 0 passed, 1 failed\n");
        return 1;
    }
    /* The test sets KARMA_URL itself where it wants one. */
    unsetenv("KARMA_URL");

    test_basics();
    test_engine_open_errors(dir);
    test_engine(dir);
    test_engine_durability(dir);
    test_memory_engine();
    test_threads();
    test_client(url);
    test_client_connection_error();
    test_surface_engine(dir);
    test_surface_client(url);

    printf("c-abi: %d passed, %d failed\n", passed, failed);
    return failed == 0 ? 0 : 1;
}
