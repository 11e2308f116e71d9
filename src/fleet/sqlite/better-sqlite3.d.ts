/**
 * The part of better-sqlite3 12's API that the fleet store uses (@types/better-sqlite3 is not
 * installed). Kept minimal on purpose: add a member here when the store starts using it.
 */
declare module 'better-sqlite3' {
  namespace Database {
    type BindValue = number | bigint | string | Buffer | null;
    /** Positional values, or one object for `@name` parameters. */
    type Params = Array<BindValue | Readonly<Record<string, BindValue>>>;

    interface RunResult {
      readonly changes: number;
      readonly lastInsertRowid: number | bigint;
    }

    interface Statement<Row = unknown> {
      run(...params: Params): RunResult;
      get(...params: Params): Row | undefined;
      all(...params: Params): Row[];
      /** Rows one at a time; the connection runs nothing else until the iterator is done. */
      iterate(...params: Params): IterableIterator<Row>;
      /** With `true`: rows as arrays of column values, in the statement's column order. */
      raw(toggle?: boolean): Statement<unknown[]>;
    }

    interface Transaction<F extends (...args: never[]) => unknown> {
      (...args: Parameters<F>): ReturnType<F>;
      deferred(...args: Parameters<F>): ReturnType<F>;
      immediate(...args: Parameters<F>): ReturnType<F>;
      exclusive(...args: Parameters<F>): ReturnType<F>;
    }

    interface Options {
      readonly?: boolean;
      fileMustExist?: boolean;
      /** Busy timeout in milliseconds (default 5000). */
      timeout?: number;
    }

    interface PragmaOptions {
      simple?: boolean;
    }

    /** Thrown by every failing SQLite call; `code` is SQLite's extended result code name (`SQLITE_BUSY`, ...). */
    class SqliteError extends Error {
      readonly code: string;
    }
  }

  class Database {
    constructor(filename: string, options?: Database.Options);
    readonly open: boolean;
    readonly inTransaction: boolean;
    readonly name: string;
    prepare<Row = unknown>(sql: string): Database.Statement<Row>;
    exec(sql: string): this;
    pragma(source: string, options?: Database.PragmaOptions): unknown;
    transaction<F extends (...args: never[]) => unknown>(fn: F): Database.Transaction<F>;
    close(): this;
  }

  export = Database;
}
