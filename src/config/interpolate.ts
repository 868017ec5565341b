/**
 * Vector's environment interpolation, applied to the config text before it is parsed:
 * `$VAR`, `${VAR}`, `${VAR:-default}` (unset or empty), `${VAR-default}` (unset only),
 * `${VAR:?message}` / `${VAR?message}` (required), and `$$` for a literal `$`.
 * A variable used without a default that is not set is a problem, as is a value containing a
 * newline (Vector refuses those so a variable cannot inject config lines).
 */

export interface InterpolationResult {
  text: string;
  problems: string[];
}

const REFERENCE =
  /\$(?:(\$)|\{([A-Za-z_][A-Za-z0-9_]*)(?:(:?[-?])([^}]*))?\}|([A-Za-z_][A-Za-z0-9_]*))/g;

export function interpolate(text: string, env: NodeJS.ProcessEnv): InterpolationResult {
  const problems: string[] = [];
  const result = text.replace(
    REFERENCE,
    (whole, dollar: string | undefined, braced: string | undefined, operator: string | undefined,
      argument: string | undefined, bare: string | undefined) => {
      if (dollar !== undefined) return '$';
      const name = braced ?? bare;
      if (name === undefined) return whole;
      const value = env[name];
      const emptyCounts = operator?.startsWith(':') ?? false;
      const missing = value === undefined || (emptyCounts && value === '');
      if (operator === ':-' || operator === '-') return missing ? (argument ?? '') : (value ?? '');
      if (operator === ':?' || operator === '?') {
        if (missing) {
          problems.push(`environment variable "${name}" is required: ${argument || 'not set'}`);
          return '';
        }
      } else if (value === undefined) {
        problems.push(`environment variable "${name}" is not set (use \${${name}:-default} for a default)`);
        return '';
      }
      if (value !== undefined && /[\r\n]/.test(value)) {
        problems.push(`environment variable "${name}" contains a newline, which is not allowed`);
        return '';
      }
      return value ?? '';
    },
  );
  return { text: result, problems };
}
