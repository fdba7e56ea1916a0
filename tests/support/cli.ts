// Kept for files written against the old helper: the world is one module now.
export * from "./world.ts";
