import Papa from 'papaparse';
import { TributaryError } from '../errors.ts';
import type { Row } from './encode.ts';

/** A CSV text split into rows by header name, with papaparse's problems (row-numbered where it can). */
export interface CsvSplit {
  rows: Row[];
  fields: string[];
  errors: Papa.ParseError[];
}

/**
 * CSV rows by header name, parsed by papaparse (quotes, separators and line ends as RFC
 * 4180 and spreadsheets write them). Cells stay text: the schema's encoder reads them. The
 * one parse the edge client, the contribute page and the server's evaluation sets share.
 */
export function splitCsv(text: string): CsvSplit {
  const parsed = Papa.parse<Row>(text, { header: true, skipEmptyLines: 'greedy', dynamicTyping: false });
  // A file of one column has no delimiter to detect: that is no error.
  return { rows: parsed.data, fields: parsed.meta.fields ?? [], errors: parsed.errors.filter((e) => e.type !== 'Delimiter') };
}

/** CSV rows, refusing the file at its first problem. */
export function parseCsv(text: string, name = 'CSV'): Row[] {
  const { rows, errors } = splitCsv(text);
  const error = errors[0];
  if (error) throw new TributaryError('DATA_MALFORMED', `${name}, row ${(error.row ?? 0) + 1}: ${error.message}`);
  return rows;
}
