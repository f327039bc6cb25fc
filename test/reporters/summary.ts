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
      // Errors outside any test (a failing afterAll, e.g. the leak check, or an import error).
      const fileErrors = module.errors().length;
      if (fileErrors > 0) {
        failed += fileErrors;
        console.log(`errors outside tests in ${module.moduleId.replace(`${process.cwd()}/`, '')}: ${fileErrors}`);
      }
    }
    if (skippedNames.length) console.log(`skipped tests:\n${skippedNames.map((n) => `  - ${n}`).join('\n')}`);
    console.log(`vitest: ${passed} passed, ${failed} failed, ${skipped} skipped`);
  }
}
