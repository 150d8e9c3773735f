/**
 * UTF-8 text from bytes. Every runtime Tributary runs in has TextDecoder; `shared` is
 * compiled without DOM or Node types, so the one member it uses is declared here.
 */
declare const TextDecoder: new () => { decode(bytes: Uint8Array): string };

export function decodeUtf8(bytes: Uint8Array): string {
  return new TextDecoder().decode(bytes);
}
