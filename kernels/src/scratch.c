/*
 * scratch.c - the American kernels' per-thread working memory, on the heap.
 *
 * The kernels' working memory (the ALO node tables and linear systems, the
 * vector ISAs' points, the tree's rows: ~790 KiB) was static thread-local
 * storage. glibc reserves that in every thread of a program linking the
 * kernels, pricing or not, zeroes it (~787 KiB resident per idle thread),
 * and takes it from the thread's stack (a thread with a stack under ~800 KiB
 * could not be created; found in review). Now a thread gets each block the
 * first time it prices (gk_american_scratch_ready reserves them at the batch
 * entry points, which answer GK_RC_OUT_OF_MEMORY where that fails, so no
 * kernel meets a missing block mid-batch), zeroed as the static storage was,
 * and a pthread key's destructor frees them when the thread exits. Only an
 * 8-byte pointer stays thread-local.
 */
#include "scratch.h"

#include <pthread.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

typedef struct thread_blocks {
  void *block[GK_SCRATCH_SLOTS];
  size_t bytes[GK_SCRATCH_SLOTS];
} thread_blocks;

static _Thread_local thread_blocks *this_thread;
static pthread_key_t blocks_key; /* set once (pthread_once); its destructor frees a thread's blocks */
static pthread_once_t key_once = PTHREAD_ONCE_INIT;
static bool key_made;

static void free_blocks(void *blocks) {
  thread_blocks *t = blocks;
  for (int i = 0; i < GK_SCRATCH_SLOTS; i++) free(t->block[i]);
  free(t);
  this_thread = NULL; /* a later destructor that prices allocates afresh */
}

static void make_key(void) { key_made = pthread_key_create(&blocks_key, free_blocks) == 0; }

/* This thread's table, made on first use; NULL where it cannot be (no key:
 * its blocks could never be freed). */
static thread_blocks *blocks_of_this_thread(void) {
  if (this_thread) return this_thread;
  pthread_once(&key_once, make_key);
  if (!key_made) return NULL;
  thread_blocks *t = calloc(1, sizeof *t);
  if (t == NULL) return NULL;
  if (pthread_setspecific(blocks_key, t) != 0) {
    free(t);
    return NULL;
  }
  return this_thread = t;
}

void *gk_thread_scratch(gk_scratch_slot slot, size_t bytes) {
  if ((unsigned)slot >= GK_SCRATCH_SLOTS) return NULL;
  thread_blocks *t = blocks_of_this_thread();
  if (t == NULL) return NULL;
  if (t->block[slot]) return bytes <= t->bytes[slot] ? t->block[slot] : NULL;
  size_t rounded = (bytes + 63) / 64 * 64;
  void *block = aligned_alloc(64, rounded);
  if (block == NULL) return NULL;
  memset(block, 0, rounded);
  t->block[slot] = block, t->bytes[slot] = rounded;
  return block;
}
