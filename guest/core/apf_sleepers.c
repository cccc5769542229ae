#include "apf_sleepers.h"

static unsigned bucket(uint32_t token)
{
	/* Linux tokens are (id << 12 | vcpu): mix the high bits down. */
	return (token ^ (token >> 12) ^ (token >> 20)) % APFS_BUCKETS;
}

void apfs_init(struct apf_sleepers *s)
{
	for (unsigned i = 0; i < APFS_BUCKETS; i++)
		s->buckets[i] = 0;
	s->free = 0;
	for (unsigned i = 0; i < APFS_NODES; i++) {
		s->pool[i].next = s->free;
		s->free = &s->pool[i];
	}
	s->waiters = s->dummies = 0;
}

/* Unlinks and returns the node for token, or 0. */
static struct apfs_node *take(struct apf_sleepers *s, uint32_t token)
{
	struct apfs_node **pp = &s->buckets[bucket(token)];
	for (struct apfs_node *n = *pp; n; pp = &n->next, n = n->next) {
		if (n->token == token) {
			*pp = n->next;
			return n;
		}
	}
	return 0;
}

static void release(struct apf_sleepers *s, struct apfs_node *n)
{
	if (n->dummy)
		s->dummies--;
	else
		s->waiters--;
	n->next = s->free;
	s->free = n;
}

static struct apfs_node *insert(struct apf_sleepers *s, uint32_t token, int dummy, void *waiter)
{
	struct apfs_node *n = s->free;
	if (!n)
		return 0;
	s->free = n->next;
	n->token = token;
	n->dummy = dummy;
	n->waiter = waiter;
	n->next = s->buckets[bucket(token)];
	s->buckets[bucket(token)] = n;
	if (dummy)
		s->dummies++;
	else
		s->waiters++;
	return n;
}

enum apfs_wait_result apfs_wait(struct apf_sleepers *s, uint32_t token, void *waiter)
{
	struct apfs_node *n = take(s, token);

	if (n) {
		/* Only a dummy can be there: the host never reuses a token
		 * still in flight. */
		release(s, n);
		return APFS_ALREADY_READY;
	}
	return insert(s, token, 0, waiter) ? APFS_WAIT : APFS_FULL;
}

void *apfs_wake(struct apf_sleepers *s, uint32_t token)
{
	struct apfs_node *n = take(s, token);
	void *w;

	if (!n) {
		insert(s, token, 1, 0); /* ready before not-present */
		return 0;
	}
	if (n->dummy) { /* a second ready for the same token: keep one dummy */
		n->next = s->buckets[bucket(token)];
		s->buckets[bucket(token)] = n;
		return 0;
	}
	w = n->waiter;
	release(s, n);
	return w;
}

unsigned apfs_wake_all(struct apf_sleepers *s, void (*fn)(void *waiter, void *ctx), void *ctx)
{
	unsigned woken = 0;

	for (unsigned i = 0; i < APFS_BUCKETS; i++) {
		struct apfs_node *n = s->buckets[i];
		s->buckets[i] = 0;
		while (n) {
			struct apfs_node *next = n->next;
			if (!n->dummy) {
				fn(n->waiter, ctx);
				woken++;
			}
			release(s, n);
			n = next;
		}
	}
	return woken;
}
