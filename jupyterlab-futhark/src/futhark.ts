/**
 * A CodeMirror 6 stream language for Futhark: keywords, primitive types, line and doc comments, numbers with type
 * suffixes, character and string literals, operators, and (for notebook cells) a first `%%futhark ...` line shown
 * as a magic.  Token names are @lezer/highlight tags, so JupyterLab's theme colours them like any language.
 */
import { StreamLanguage, StringStream } from '@codemirror/language';

const KEYWORDS = new Set([
  'assert', 'case', 'def', 'do', 'else', 'entry', 'for', 'if', 'import', 'in', 'include', 'let', 'local', 'loop',
  'match', 'module', 'open', 'then', 'type', 'val', 'while', 'with'
]);
const TYPES = new Set([
  'i8', 'i16', 'i32', 'i64', 'u8', 'u16', 'u32', 'u64', 'f16', 'f32', 'f64', 'bool'
]);
const ATOMS = new Set(['true', 'false']);
const DEFINERS = new Set(['def', 'entry', 'let', 'val', 'type', 'module', 'local']);

const NUMBER =
  /^(?:0[xX][0-9a-fA-F_]+(?:\.[0-9a-fA-F_]+)?(?:[pP][+-]?[0-9]+)?|0[bB][01_]+|[0-9][0-9_]*(?:\.[0-9][0-9_]*)?(?:[eE][+-]?[0-9]+)?)(?:[iu](?:8|16|32|64)|f(?:16|32|64))?/;
const OPERATOR = /^[-+*/%=!<>&|^~\\:.@?]+/;
const IDENT = /^[a-zA-Z_][a-zA-Z0-9_']*/;

export interface FutharkState {
  first: boolean; // nothing of the document read yet: a `%%` line here is a cell magic
  definer: boolean; // the previous word was `def`, `entry`, ...: the next name is being defined
}

export const futharkParser = {
  name: 'futhark',
  startState: (): FutharkState => ({ first: true, definer: false }),
  blankLine(state: FutharkState): void {
    state.first = false;
  },
  token(stream: StringStream, state: FutharkState): string | null {
    if (state.first) {
      state.first = false;
      if (stream.match(/^%%.*/)) {
        return 'meta';
      }
    }
    if (stream.eatSpace()) {
      return null;
    }
    if (stream.match(/^--\s*\|/)) {
      stream.skipToEnd();
      return 'docComment';
    }
    if (stream.match('--')) {
      stream.skipToEnd();
      return 'lineComment';
    }
    if (stream.match(/^"(?:[^"\\]|\\.)*"?/)) {
      return 'string';
    }
    if (stream.match(/^'(?:[^'\\]|\\.)'/)) {
      return 'character';
    }
    if (stream.match(/^#\[[^\]]*\]/)) {
      return 'meta'; // attribute, e.g. #[unroll]
    }
    if (stream.match(/^#[a-zA-Z_][a-zA-Z0-9_']*/)) {
      return 'atom'; // sum-type constructor
    }
    if (stream.match(NUMBER)) {
      return 'number';
    }
    if (stream.match(/^'[~^]?[a-zA-Z_][a-zA-Z0-9_']*/)) {
      return 'typeName'; // type parameter
    }
    const word = stream.match(IDENT) as RegExpMatchArray | null;
    if (word) {
      const w = word[0];
      const wasDefiner = state.definer;
      state.definer = DEFINERS.has(w);
      if (KEYWORDS.has(w)) {
        return 'keyword';
      }
      if (TYPES.has(w)) {
        return 'typeName';
      }
      if (ATOMS.has(w)) {
        return 'bool';
      }
      return wasDefiner ? 'variableName.definition' : 'variableName';
    }
    state.definer = false;
    if (stream.match(OPERATOR)) {
      return 'operator';
    }
    if (stream.match(/^[()[\]{}]/)) {
      return 'bracket';
    }
    if (stream.match(/^[,`]/)) {
      return 'punctuation';
    }
    stream.next();
    return null;
  },
  languageData: {
    commentTokens: { line: '--' }
  }
};

export const futharkLanguage = StreamLanguage.define(futharkParser);
