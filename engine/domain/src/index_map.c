/* index_map.c - see index_map.h. */
#include "index_map.h"

#include <stdlib.h>
#include <string.h>

/* FNV-1a, then a final mix so that nearby keys spread over the table. */
uint64_t gk_hash_bytes(uint64_t hash, const void *data, size_t size) {
  const unsigned char *p = data;
  for (size_t i = 0; i < size; i++) hash = (hash ^ p[i]) * UINT64_C(1099511628211);
  return hash;
}

static uint64_t mix(uint64_t h) {
  h ^= h >> 33;
  h *= UINT64_C(0xff51afd7ed558ccd);
  h ^= h >> 33;
  return h;
}

size_t gk_index_map_find(const index_map *map, uint64_t hash, index_matches matches,
                      const void *context) {
  if (map->capacity == 0) return SIZE_MAX;
  size_t mask = map->capacity - 1;
  for (size_t i = mix(hash) & mask;; i = (i + 1) & mask) {
    uint32_t slot = map->slots[i];
    if (slot == 0) return SIZE_MAX;
    if (map->hashes[i] == hash && matches(context, slot - 1)) return slot - 1;
  }
}

static void place(uint32_t *slots, uint64_t *hashes, size_t capacity, uint64_t hash,
                  uint32_t slot) {
  size_t mask = capacity - 1;
  size_t i = mix(hash) & mask;
  while (slots[i] != 0) i = (i + 1) & mask;
  slots[i] = slot;
  hashes[i] = hash;
}

static bool grow(index_map *map) {
  size_t capacity = map->capacity ? map->capacity * 2 : 16;
  uint32_t *slots = calloc(capacity, sizeof *slots);
  uint64_t *hashes = malloc(capacity * sizeof *hashes);
  if (slots == NULL || hashes == NULL) {
    free(slots);
    free(hashes);
    return false;
  }
  for (size_t i = 0; i < map->capacity; i++)
    if (map->slots[i]) place(slots, hashes, capacity, map->hashes[i], map->slots[i]);
  free(map->slots);
  free(map->hashes);
  map->slots = slots;
  map->hashes = hashes;
  map->capacity = capacity;
  return true;
}

bool gk_index_map_reserve(index_map *map, size_t extra) {
  while ((map->count + extra) * 2 > map->capacity)
    if (!grow(map)) return false;
  return true;
}

bool gk_index_map_add(index_map *map, uint64_t hash, size_t index) {
  if (index >= UINT32_MAX - 1) return false;
  if ((map->count + 1) * 2 > map->capacity && !grow(map)) return false;
  place(map->slots, map->hashes, map->capacity, hash, (uint32_t)(index + 1));
  map->count++;
  return true;
}

bool gk_index_map_copy(index_map *to, const index_map *from) {
  memset(to, 0, sizeof *to);
  if (from->capacity == 0) return true;
  to->slots = malloc(from->capacity * sizeof *to->slots);
  to->hashes = malloc(from->capacity * sizeof *to->hashes);
  if (to->slots == NULL || to->hashes == NULL) {
    gk_index_map_free(to);
    return false;
  }
  memcpy(to->slots, from->slots, from->capacity * sizeof *to->slots);
  memcpy(to->hashes, from->hashes, from->capacity * sizeof *to->hashes);
  to->capacity = from->capacity;
  to->count = from->count;
  return true;
}

void gk_index_map_free(index_map *map) {
  free(map->slots);
  free(map->hashes);
  memset(map, 0, sizeof *map);
}
