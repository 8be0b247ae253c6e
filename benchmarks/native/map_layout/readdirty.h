/* readdirty.h -- Go 1.9-1.23's sync.Map layout in C, for the map layout
 * measurement only (see readdirty.c, bench.c). */
#ifndef GOPY_BENCH_READDIRTY_H
#define GOPY_BENCH_READDIRTY_H

#include "gopy.h"

typedef struct rd_map rd_map;

rd_map *rd_map_make(const gopy_map_type *type);
bool rd_map_load(rd_map *m, const void *key, void **value);
void rd_map_store(rd_map *m, void *key, void *value);
bool rd_map_swap(rd_map *m, void *key, void *value, void **previous);
bool rd_map_load_and_delete(rd_map *m, const void *key, void **value);
void rd_map_delete(rd_map *m, const void *key);
void rd_map_free(rd_map *m);

#endif
