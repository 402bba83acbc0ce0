import type { Tracer } from "effect"

/**
 * Trace options for spans opened on every request or upstream call: a captured stack trace costs
 * an Error per span (most of a span's price when no exporter is installed) and names a line of
 * the engine, which the span's name already does.
 */
export const perCallSpan: Tracer.TraceOptions = { captureStackTrace: false }
