import Papa from 'papaparse';
import { TributaryError } from '../errors.ts';
import type { Row } from './encode.ts';

/**
 * CSV rows by header name, parsed by papaparse (quotes, separators and line ends as RFC
 * 4180 and spreadsheets write them). Cells stay text: the schema's encoder reads them.
 */
export function parseCsv(text: string, name = 'CSV'): Row[] {
  const parsed = Papa.parse<Row>(text, { header: true, skipEmptyLines: 'greedy', dynamicTyping: false });
  // A file of one column has no delimiter to detect: that is no error.
  const error = parsed.errors.find((e) => e.type !== 'Delimiter');
  if (error) throw new TributaryError('DATA_MALFORMED', `${name}, row ${(error.row ?? 0) + 1}: ${error.message}`);
  return parsed.data;
}
