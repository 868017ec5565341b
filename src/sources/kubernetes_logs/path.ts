import type { KubernetesMeta } from '../../event.js';

/**
 * Reads the container's identity from a kubelet log path:
 * `<pod_log_directory>/<namespace>_<pod name>_<pod uid>/<container name>/<restart count>.log`.
 * Namespaces and pod names are DNS labels/subdomains and a uid is a UUID, so none contains `_`:
 * exactly two underscores separate the three parts. Returns null for any other shape.
 */
export function parsePodLogPath(file: string): KubernetesMeta | null {
  const parts = file.split(/[\\/]/);
  if (parts.length < 3) return null;
  const name = parts[parts.length - 1]!;
  const container = parts[parts.length - 2]!;
  const pod = parts[parts.length - 3]!;
  if (!name.endsWith('.log') || container === '') return null;
  const fields = pod.split('_');
  if (fields.length !== 3 || fields.some((f) => f === '')) return null;
  return { pod_namespace: fields[0]!, pod_name: fields[1]!, pod_uid: fields[2]!, container_name: container };
}
