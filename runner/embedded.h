/* embedded.h: the stdlib's Lua sources, compiled into the binary by embed.sh. */
#pragma once

typedef struct EmbeddedFile {
        const char *name;   /* module name, e.g. "core" for stdlib/core.lua */
        const char *source;
} EmbeddedFile;

extern const EmbeddedFile embedded_stdlib[];
