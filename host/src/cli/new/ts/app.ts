// {{name}}: a toolmesh tool in TypeScript.
//
// Each tool(...) is one MCP tool. `tool build` type-checks this file and
// makes the tool's JSON Schemas from its types: the handler's argument
// (doc comments become descriptions; `?` makes a field optional) and its
// result. The doc comment above tool(...) describes the tool.

import { tool, ToolError, type Integer } from "toolmesh";

interface WordsArgs {
  /** The text to count. */
  text: string;
  /** How many of the most frequent words to list. @minimum 1 @maximum 100 */
  top?: Integer;
  /** Whether "The" and "the" are different words. */
  caseSensitive?: boolean;
}

interface WordsResult {
  /** Words in the text. */
  words: number;
  /** Distinct words. */
  distinct: number;
  /** The most frequent words, most frequent first. */
  frequent: { word: string; count: number }[];
}

/** Counts the words of a text and lists the most frequent. */
tool({ name: "word_stats", readOnly: true, idempotent: true }, ({ text, top = 5, caseSensitive = false }: WordsArgs): WordsResult => {
  if (top < 1) throw new ToolError("`top` must be at least 1");
  // Letters (Latin, with accents), digits and apostrophes. (The engine has
  // no Unicode property escapes such as \p{L}, nor Intl.)
  const words = (text.match(/[A-Za-z0-9À-ÖØ-öø-ɏ'’]+/g) ?? []).map((w) => (caseSensitive ? w : w.toLowerCase()));
  const counts = new Map<string, number>();
  for (const word of words) counts.set(word, (counts.get(word) ?? 0) + 1);
  const frequent = [...counts]
    .sort(([a, x], [b, y]) => y - x || (a < b ? -1 : 1))
    .slice(0, top)
    .map(([word, count]) => ({ word, count }));
  return { words: words.length, distinct: counts.size, frequent };
});
