import type { Reporter, TestModule } from 'vitest/node';

/**
 * Prints one plain closing line, `vitest: N passed, N failed, N skipped`, that any CI log reader
 * understands, plus the names of skipped tests so a skip is never silent.
 */
export default class SummaryReporter implements Reporter {
  onTestRunEnd(testModules: ReadonlyArray<TestModule>): void {
    let passed = 0;
    let failed = 0;
    let skipped = 0;
    const skippedNames: string[] = [];
    for (const module of testModules) {
      for (const test of module.children.allTests()) {
        const state = test.result().state;
        if (state === 'passed') passed++;
        else if (state === 'failed') failed++;
        else {
          skipped++;
          skippedNames.push(`${module.moduleId.replace(`${process.cwd()}/`, '')} > ${test.fullName}`);
        }
      }
      if (module.state() === 'failed' && module.children.size === 0) failed++;
    }
    if (skippedNames.length) console.log(`skipped tests:\n${skippedNames.map((n) => `  - ${n}`).join('\n')}`);
    console.log(`vitest: ${passed} passed, ${failed} failed, ${skipped} skipped`);
  }
}
