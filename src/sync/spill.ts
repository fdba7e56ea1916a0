/**
 * Where a run keeps the Moodle descriptions it holds until their users'
 * turns: in a file, not in memory. A campus whose staff write CVs there has
 * 100,000 users with 2 KB of HTML each, 200 MB or more held by the process
 * to its end (V8 then grows its heap past twice that); on disk a bio costs
 * two numbers, and is read back (a few microseconds) when its user is
 * compared. The file is removed as soon as it is open, so nothing is left
 * behind whatever ends the process; where no file can be made, the texts
 * stay in memory as before.
 */
import fs from "node:fs";

/** Where one text lies in the spill. */
export interface Spilled {
  readonly offset: number;
  readonly bytes: number;
}

export interface TextSpill {
  readonly put: (text: string) => Spilled;
  readonly get: (where: Spilled) => string;
  readonly close: () => void;
}

/** Writes go out in blocks this large; the last block is read from memory. */
const blockBytes = 1024 * 1024;

const inMemory = (): TextSpill => {
  const texts: string[] = [];
  return {
    put: (text) => ({ offset: texts.push(text) - 1, bytes: 0 }),
    get: (where) => texts[where.offset],
    close: () => {
      texts.length = 0;
    },
  };
};

const inFile = (fd: number): TextSpill => {
  const encoder = new TextEncoder();
  const decoder = new TextDecoder();
  let block = new Uint8Array(blockBytes);
  let filled = 0;
  /** Bytes already in the file: the block starts there. */
  let written = 0;
  const flush = () => {
    let done = 0;
    while (done < filled) {
      done += fs.writeSync(fd, block, done, filled - done, written + done);
    }
    written += filled;
    filled = 0;
  };
  return {
    put: (text) => {
      // UTF-8 takes at most 3 bytes per UTF-16 unit.
      const most = text.length * 3;
      if (filled + most > block.length) {
        flush();
        if (most > block.length) block = new Uint8Array(most);
      }
      const { written: bytes } = encoder.encodeInto(
        text,
        block.subarray(filled),
      );
      const where = { offset: written + filled, bytes };
      filled += bytes;
      return where;
    },
    get: ({ offset, bytes }) => {
      if (offset >= written) {
        const start = offset - written;
        return decoder.decode(block.subarray(start, start + bytes));
      }
      const read = new Uint8Array(bytes);
      let done = 0;
      while (done < bytes) {
        const n = fs.readSync(fd, read, done, bytes - done, offset + done);
        if (n === 0) break;
        done += n;
      }
      return decoder.decode(read.subarray(0, done));
    },
    close: () => {
      try {
        fs.closeSync(fd);
      } catch {
        // Already closed: nothing is held.
      }
    },
  };
};

/**
 * A spill in a file removed at once, in `dir` (the log folder: on disk and
 * private, where /tmp is often memory), else the system's temporary folder,
 * else memory.
 */
export const openTextSpill = (dir: string | undefined): TextSpill => {
  for (const options of dir === undefined ? [{}] : [{ dir }, {}]) {
    try {
      const path = Deno.makeTempFileSync({ ...options, prefix: ".bios-" });
      const fd = fs.openSync(path, "r+");
      try {
        fs.unlinkSync(path);
      } catch (error) {
        // Bios must not outlive the run on disk: not here, then.
        fs.closeSync(fd);
        throw error;
      }
      return inFile(fd);
    } catch {
      // Not writable here: try the next place.
    }
  }
  return inMemory();
};
