/*
 * index_map.h - an open-addressing hash index from a key to a position in one
 * of the book's dense arrays (positions, trades, markets). It stores only array
 * indices; the caller hashes and compares keys, so one small structure serves
 * every key type and the arrays keep their insertion order (which is what
 * iteration, snapshots and equality use). Linear probing, load <= 1/2, grows by
 * doubling; entries are never removed (a book never forgets a position).
 */
#ifndef GREEKS_INDEX_MAP_H
#define GREEKS_INDEX_MAP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct index_map {
  uint32_t *slots; /* array index + 1; 0 is empty */
  uint64_t *hashes;
  size_t capacity; /* power of two, or 0 */
  size_t count;
} index_map;

/* Is the element at `index` the key? */
typedef bool (*index_matches)(const void *context, size_t index);

/* The index of the key with `hash`, or SIZE_MAX. */
size_t gk_index_map_find(const index_map *map, uint64_t hash, index_matches matches,
                      const void *context);
/* Adds index for hash (the caller checked it is absent); false on OOM. */
bool gk_index_map_add(index_map *map, uint64_t hash, size_t index);
/* Makes room for `extra` more adds, so that they cannot fail; false on OOM. */
bool gk_index_map_reserve(index_map *map, size_t extra);
bool gk_index_map_copy(index_map *to, const index_map *from);
void gk_index_map_free(index_map *map);

uint64_t gk_hash_bytes(uint64_t hash, const void *data, size_t size);
#define HASH_SEED UINT64_C(1469598103934665603)

#endif /* GREEKS_INDEX_MAP_H */
