/**
 * Structured logging through LogTape. Categories start with "spfs". The service logs to a rotating
 * file in the runtime dir; CLI commands log warnings to stderr.
 */
import {
  configure,
  getConsoleSink,
  getJsonLinesFormatter,
  getLogger,
  getTextFormatter,
  type Logger,
} from "@logtape/logtape";

export type LogLevel = "debug" | "info" | "warning" | "error";

/** Sets up sinks once per process. `file` enables a rotating file sink (10 MiB × 3). */
export async function setupLogging(
  opts: { level?: LogLevel; file?: string; format?: "text" | "json"; console?: boolean },
) {
  const formatter = opts.format === "json" ? getJsonLinesFormatter() : getTextFormatter();
  const sinks: Record<string, any> = {};
  if (opts.console !== false) sinks.console = getConsoleSink({ formatter });
  if (opts.file) {
    const { getRotatingFileSink } = await import("@logtape/file");
    sinks.file = getRotatingFileSink(opts.file, {
      maxSize: 10 * 1024 * 1024,
      maxFiles: 3,
      formatter,
      bufferSize: 0,
    });
  }
  await configure({
    reset: true,
    sinks,
    loggers: [
      { category: ["spfs"], lowestLevel: opts.level ?? "info", sinks: Object.keys(sinks) },
      { category: ["logtape", "meta"], lowestLevel: "warning", sinks: Object.keys(sinks) },
    ],
  });
}

/** A logger under the "spfs" category. */
export type { Logger };

export function logger(...category: string[]): Logger {
  return getLogger(["spfs", ...category]);
}
