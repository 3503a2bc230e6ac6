/**
 * futhark-lab's JupyterLab extension: Futhark highlighting for `%%futhark` notebook cells and `.fut` files.
 *
 * A code cell whose first line starts with `%%futhark` gets the `text/x-futhark` MIME type (the notebook's own
 * language otherwise); the notebook resets cell MIME types when its kernel changes, so they are re-applied then.
 * Tokens carry @lezer/highlight's `tok-*` classes as well as the theme's colours.
 */
import { JupyterFrontEnd, JupyterFrontEndPlugin } from '@jupyterlab/application';
import { IEditorLanguageRegistry } from '@jupyterlab/codemirror';
import { INotebookTracker, NotebookPanel } from '@jupyterlab/notebook';
import { LanguageSupport, syntaxHighlighting } from '@codemirror/language';
import { classHighlighter } from '@lezer/highlight';

import { futharkLanguage } from './futhark';

export const FUTHARK_MIME = 'text/x-futhark';
const MAGIC = /^\s*%%futhark\b/;

function futharkSupport(): LanguageSupport {
  return new LanguageSupport(futharkLanguage, [syntaxHighlighting(classHighlighter)]);
}

function watchNotebook(panel: NotebookPanel): void {
  const notebook = panel.content;
  const seen = new WeakSet<object>();
  const apply = (): void => {
    for (const cell of notebook.widgets) {
      const model = cell.model;
      if (model.type !== 'code') {
        continue;
      }
      if (!seen.has(model)) {
        seen.add(model);
        model.mimeTypeChanged.connect(apply); // the notebook set its language again (kernel change)
      }
      const isFuthark = MAGIC.test(model.sharedModel.getSource().split('\n', 1)[0]);
      const want = isFuthark ? FUTHARK_MIME : notebook.codeMimetype;
      if (model.mimeType !== want && (isFuthark || model.mimeType === FUTHARK_MIME)) {
        model.mimeType = want;
      }
    }
  };
  notebook.modelContentChanged.connect(apply);
  notebook.modelChanged.connect(apply);
  void panel.context.ready.then(apply);
  apply();
}

const plugin: JupyterFrontEndPlugin<void> = {
  id: 'futhark-lab-jupyterlab:plugin',
  description: 'Futhark syntax highlighting in %%futhark cells and .fut files',
  autoStart: true,
  requires: [IEditorLanguageRegistry, INotebookTracker],
  activate: (_app: JupyterFrontEnd, languages: IEditorLanguageRegistry, tracker: INotebookTracker) => {
    languages.addLanguage({
      name: 'futhark',
      displayName: 'Futhark',
      mime: FUTHARK_MIME,
      extensions: ['fut'],
      support: futharkSupport()
    });
    tracker.forEach(watchNotebook);
    tracker.widgetAdded.connect((_sender, panel) => watchNotebook(panel));
  }
};

export default plugin;
