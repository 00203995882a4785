// cron: cron schedules for agents — when an expression fires next, and
// what it means in words. Times are UTC.
//
// A toolmesh tool written in TypeScript with the JavaScript SDK: `tool
// build` type-checks it and makes each tool's JSON Schemas from the types
// of its handler (scripts/build-sdk-examples.sh builds it for `tool serve`).

import { InvalidArguments, tool, type Integer } from "toolmesh";

/** The five fields of an expression, each the set of values it allows. */
interface Schedule {
  minutes: Set<number>;
  hours: Set<number>;
  days: Set<number>;
  months: Set<number>;
  weekdays: Set<number>;
  /** Whether day-of-month and day-of-week were both restricted (then either matches). */
  eitherDay: boolean;
  daysRestricted: boolean;
  weekdaysRestricted: boolean;
}

interface Field {
  name: string;
  min: number;
  max: number;
  names?: string[];
}

const FIELDS: Field[] = [
  { name: "minute", min: 0, max: 59 },
  { name: "hour", min: 0, max: 23 },
  { name: "day of month", min: 1, max: 31 },
  { name: "month", min: 1, max: 12, names: ["JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC"] },
  { name: "day of week", min: 0, max: 7, names: ["SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"] },
];

const MACROS: Record<string, string> = {
  "@yearly": "0 0 1 1 *",
  "@annually": "0 0 1 1 *",
  "@monthly": "0 0 1 * *",
  "@weekly": "0 0 * * 0",
  "@daily": "0 0 * * *",
  "@midnight": "0 0 * * *",
  "@hourly": "0 * * * *",
};

const MONTHS = ["January", "February", "March", "April", "May", "June", "July", "August", "September", "October", "November", "December"];
const WEEKDAYS = ["Sunday", "Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday"];
// How far ahead a schedule is searched: a leap day fires at least once in 8 years.
const HORIZON_DAYS = 366 * 8 + 2;

function value(text: string, field: Field): number {
  const named = field.names?.indexOf(text.toUpperCase()) ?? -1;
  const number = named >= 0 ? named + (field.name === "month" ? 1 : 0) : /^\d+$/.test(text) ? Number(text) : NaN;
  if (!(number >= field.min && number <= field.max)) {
    throw new InvalidArguments(`\`expression\`: ${JSON.stringify(text)} is not a ${field.name} (${field.min}-${field.max}${field.names ? " or a name" : ""})`);
  }
  return number;
}

function parseField(text: string, field: Field): Set<number> {
  const values = new Set<number>();
  for (const part of text.split(",")) {
    const [range, stepText, extra] = part.split("/");
    if (extra !== undefined || range === "") throw new InvalidArguments(`\`expression\`: ${JSON.stringify(part)} is not a ${field.name}`);
    const step = stepText === undefined ? 1 : /^\d+$/.test(stepText) ? Number(stepText) : 0;
    if (step < 1) throw new InvalidArguments(`\`expression\`: the step in ${JSON.stringify(part)} must be a whole number from 1`);
    let [low, high] = [field.min, field.max];
    if (range !== "*") {
      const [from, to, more] = range.split("-");
      if (more !== undefined) throw new InvalidArguments(`\`expression\`: ${JSON.stringify(part)} is not a range`);
      low = value(from, field);
      high = to === undefined ? (stepText === undefined ? low : field.max) : value(to, field);
      if (high < low) throw new InvalidArguments(`\`expression\`: the range ${JSON.stringify(range)} runs backwards`);
    }
    for (let v = low; v <= high; v += step) values.add(field.name === "day of week" ? v % 7 : v);
  }
  return values;
}

function parse(expression: string): Schedule {
  const text = MACROS[expression.trim().toLowerCase()] ?? expression.trim();
  const parts = text.split(/\s+/);
  if (parts.length !== 5) {
    throw new InvalidArguments(`\`expression\` has ${parts.length} fields; cron has five: minute hour day-of-month month day-of-week (or @daily, @hourly, …)`);
  }
  const [minutes, hours, days, months, weekdays] = parts.map((p, i) => parseField(p, FIELDS[i]));
  // As cron does: a field that starts with `*` (`*`, `*/2`) does not
  // restrict the day, so only the other day field decides.
  const daysRestricted = !parts[2].startsWith("*");
  const weekdaysRestricted = !parts[4].startsWith("*");
  return { minutes, hours, days, months, weekdays, eitherDay: daysRestricted && weekdaysRestricted, daysRestricted, weekdaysRestricted };
}

function dayMatches(s: Schedule, date: Date): boolean {
  if (!s.months.has(date.getUTCMonth() + 1)) return false;
  const day = s.days.has(date.getUTCDate());
  const weekday = s.weekdays.has(date.getUTCDay());
  return s.eitherDay ? day || weekday : day && weekday;
}

function sorted(values: Set<number>): number[] {
  return [...values].sort((a, b) => a - b);
}

/** The next `count` times `s` fires strictly after `after`. */
function upcoming(s: Schedule, after: Date, count: number): Date[] {
  const runs: Date[] = [];
  const hours = sorted(s.hours);
  const minutes = sorted(s.minutes);
  const start = Date.UTC(after.getUTCFullYear(), after.getUTCMonth(), after.getUTCDate());
  for (let d = 0; d < HORIZON_DAYS && runs.length < count; d++) {
    const day = new Date(start + d * 86_400_000);
    if (!dayMatches(s, day)) continue;
    for (const hour of hours) {
      for (const minute of minutes) {
        const at = new Date(day.getTime() + (hour * 60 + minute) * 60_000);
        if (at.getTime() > after.getTime() && runs.length < count) runs.push(at);
      }
    }
  }
  return runs;
}

interface NextRunsArgs {
  /** A cron expression: minute hour day-of-month month day-of-week (e.g. `30 9 * * MON-FRI`), or a macro such as `@daily`. */
  expression: string;
  /** How many times to list. @minimum 1 @maximum 100 */
  count?: Integer;
  /** List times after this one (ISO 8601, e.g. `2026-01-31T12:00:00Z`; default: now). */
  after?: string;
}

interface NextRuns {
  /** The expression, as read (macros expanded). */
  expression: string;
  /** When it fires, in UTC (ISO 8601), earliest first. */
  runs: string[];
}

/** Lists the next times a cron expression fires, in UTC. */
tool({ name: "next_runs", readOnly: true }, ({ expression, count = 5, after }: NextRunsArgs): NextRuns => {
  if (!Number.isInteger(count) || count < 1 || count > 100) throw new InvalidArguments("`count` must be a whole number from 1 to 100");
  const from = after === undefined ? new Date() : new Date(after);
  if (Number.isNaN(from.getTime())) throw new InvalidArguments(`\`after\`: ${JSON.stringify(after)} is not an ISO 8601 time`);
  const schedule = parse(expression);
  return {
    expression: MACROS[expression.trim().toLowerCase()] ?? expression.trim().split(/\s+/).join(" "),
    runs: upcoming(schedule, from, count).map((d) => d.toISOString().replace(".000Z", "Z")),
  };
});

function list(values: number[], name: (v: number) => string): string {
  const words = values.map(name);
  return words.length <= 2 ? words.join(" and ") : `${words.slice(0, -1).join(", ")} and ${words.at(-1)}`;
}

function describeTimes(s: Schedule): string {
  const hours = sorted(s.hours);
  const minutes = sorted(s.minutes);
  const pad = (n: number) => String(n).padStart(2, "0");
  if (minutes.length === 60 && hours.length === 24) return "every minute";
  if (hours.length === 24) return minutes.length === 1 ? `at minute ${minutes[0]} of every hour` : `at minutes ${list(minutes, String)} of every hour`;
  if (minutes.length === 60) return `every minute of hour ${list(hours, pad)}`;
  if (hours.length * minutes.length <= 6) {
    return `at ${list(hours.flatMap((h) => minutes.map((m) => h * 60 + m)), (t) => `${pad(Math.floor(t / 60))}:${pad(t % 60)}`)}`;
  }
  return `at minutes ${list(minutes, String)} of hours ${list(hours, String)}`;
}

function describeDays(s: Schedule): string {
  const parts: string[] = [];
  const days = s.daysRestricted ? `on day ${list(sorted(s.days), String)} of the month` : "";
  const weekdays = s.weekdaysRestricted ? `on ${list(sorted(s.weekdays), (d) => WEEKDAYS[d])}` : "";
  if (days && weekdays) parts.push(`${days}, or ${weekdays}`);
  else parts.push(days || weekdays || "every day");
  if (s.months.size < 12) parts.push(`in ${list(sorted(s.months), (m) => MONTHS[m - 1])}`);
  return parts.join(" ");
}

interface ExplainArgs {
  /** A cron expression: minute hour day-of-month month day-of-week, or a macro such as `@weekly`. */
  expression: string;
}

interface Explanation {
  /** The schedule in words (UTC). */
  description: string;
  /** The values each field allows. */
  fields: { minute: number[]; hour: number[]; dayOfMonth: number[]; month: number[]; dayOfWeek: number[] };
}

/** Says in words when a cron expression fires, and which values each of its fields allows. */
tool({ name: "explain", readOnly: true, idempotent: true }, ({ expression }: ExplainArgs): Explanation => {
  const s = parse(expression);
  return {
    description: `${describeTimes(s)}, ${describeDays(s)} (UTC)`,
    fields: {
      minute: sorted(s.minutes),
      hour: sorted(s.hours),
      dayOfMonth: sorted(s.days),
      month: sorted(s.months),
      dayOfWeek: sorted(s.weekdays),
    },
  };
});
