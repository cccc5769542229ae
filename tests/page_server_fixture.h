/*
 * A test fixture: apfvm's page server (src/net/page_server.h) serving a
 * fresh image over loopback from a thread of the test.  One at a time:
 * fixture_server is the running one.
 */
#ifndef APFVM_PAGE_SERVER_FIXTURE_H
#define APFVM_PAGE_SERVER_FIXTURE_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "image/image.h"
#include "net/page_server.h"

static struct page_server fixture_server;
static atomic_int fixture_stop;
static pthread_t fixture_thread;
static char fixture_image[64];

static void *fixture_run(void *arg)
{
	struct apf_err e;
	(void)arg;
	if (page_server_run(&fixture_server, &fixture_stop, &e))
		fprintf(stderr, "server: %s\n", e.msg);
	return NULL;
}

/* Writes an image of npages pages (seed) and serves it on 127.0.0.1 (the
 * port in fixture_server.port) as cfg says. */
static inline bool fixture_start_with(uint64_t npages, uint64_t seed, const struct page_server_config *cfg)
{
	struct apf_err e;
	snprintf(fixture_image, sizeof(fixture_image), "/tmp/apfvm-serve-test.XXXXXX");
	fixture_stop = 0;
	int fd = mkstemp(fixture_image);
	if (fd < 0)
		return false;
	close(fd);
	if (image_create(fixture_image, npages * 4096ull, seed, &e) ||
	    page_server_open(&fixture_server, fixture_image, false, "127.0.0.1:0", cfg, &e)) {
		fprintf(stderr, "fixture: %s\n", e.msg);
		unlink(fixture_image);
		return false;
	}
	return fixture_server.port != 0 &&
	       pthread_create(&fixture_thread, NULL, fixture_run, NULL) == 0;
}

/* The same with the default limits, offering max_count pages per READ. */
static bool fixture_start(uint64_t npages, uint64_t seed, uint32_t max_count)
{
	struct page_server_config cfg;
	page_server_config_default(&cfg);
	cfg.max_count = max_count;
	return fixture_start_with(npages, seed, &cfg);
}

/* Connections being served now. */
static inline unsigned fixture_clients(void)
{
	pthread_mutex_lock(&fixture_server.lock);
	unsigned n = fixture_server.clients;
	pthread_mutex_unlock(&fixture_server.lock);
	return n;
}

/* Stops the server (every connection ended and waited for). */
static void fixture_stop_server(void)
{
	fixture_stop = 1;
	pthread_join(fixture_thread, NULL);
	page_server_close(&fixture_server);
	unlink(fixture_image);
}

#endif
